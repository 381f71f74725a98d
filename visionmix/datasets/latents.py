"""Pre-encoded VAE latents: the on-disk format written by ``visionmix extract-latents``, and its reader.

Latent diffusion (LDM; DiT, SiT, U-ViT on ImageNet) trains on ``z = vae.encode(x).latent_dist.sample()``
of each image and, for flip augmentation, of its mirror image. Encoding once ahead of time removes the
VAE from the training loop. Format (``version`` 1), all in one folder:

* ``latents_00000.npy`` ... : ``(n, 2, C, h, w)`` float32 (or float16) *unscaled* latents; axis 1 is
  ``[latent of the image, latent of its horizontal mirror image]`` (the image is flipped before
  encoding: mirroring a latent is not the same). The model's data preprocessor multiplies by the VAE's
  scaling factor (0.18215 for the SD VAEs), recorded as ``vae_scaling_factor``.
* ``labels_00000.npy`` ... : ``(n,)`` int64 class ids (-1 for unconditional data).
* ``meta.json`` : ``format="visionmix-latents"``, ``version``, ``complete``, ``count``, ``latent_shape``
  ``[C, h, w]``, ``dtype``, ``image_size``, ``vae`` (path), ``vae_scaling_factor``, ``seed``,
  ``sampling`` (how z was drawn), ``class_cond``, ``classes``, ``data_root``, ``shard_size`` and
  ``shards``: a list of ``{"latents": file, "labels": file, "count": n}`` in dataset order.

Every file is written to a temporary name and moved into place with ``os.replace``, so a killed
extraction leaves whole shards only, and ``meta.json`` says ``complete: true`` only at the end.

:class:`LatentDataset` items are ``dict(inputs=float32 (C, h, w), labels=int)``; ``random_flip`` picks
the flipped copy with probability 0.5 (torch's RNG). Shards are memory-mapped lazily in each process.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from ..atomic_write import atomic_path
import torch
from torch.utils.data import Dataset

from .images import AugmentationRNG
from .paths import missing_data_error, resolve_root

FORMAT = "visionmix-latents"
VERSION = 1
META_FILE = "meta.json"
EXPECTED_LAYOUT = (f"VAE latents written by visionmix extract-latents (<root>/{META_FILE} and "
                   "latents_*.npy / labels_*.npy shards)")


def shard_files(index: int) -> tuple[str, str]:
    """File names (latents, labels) of shard ``index``."""
    return f"latents_{index:05d}.npy", f"labels_{index:05d}.npy"


def shard_entry(index: int, count: int) -> dict:
    """The ``meta.json`` record of shard ``index``."""
    latents_name, labels_name = shard_files(index)
    return dict(latents=latents_name, labels=labels_name, count=int(count))


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(file)``, on disk (fsync) before it takes ``path``'s name."""
    with atomic_path(path, fsync=True) as temp, open(temp, "wb") as f:
        write(f)


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    _atomic_write(Path(path), lambda f: np.save(f, array, allow_pickle=False))


def save_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    _atomic_write(Path(path), lambda f: f.write(json.dumps(obj, indent=1).encode()))


def npy_shape(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header, without reading (or mapping) the data."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    return tuple(shape), dtype


def save_shard(root: str | os.PathLike, index: int, latents: np.ndarray, labels: np.ndarray) -> dict:
    """Write one shard (labels first: a shard counts as present once its latents file exists)."""
    if latents.ndim != 5 or latents.shape[1] != 2 or len(labels) != len(latents):
        raise ValueError(f"a shard is latents (n, 2, C, h, w) + labels (n,); got {latents.shape}, {labels.shape}")
    latents_name, labels_name = shard_files(index)
    save_npy_atomic(Path(root) / labels_name, np.asarray(labels, dtype=np.int64))
    save_npy_atomic(Path(root) / latents_name, latents)
    return shard_entry(index, len(latents))


def shard_is_complete(root: str | os.PathLike, index: int, count: int, latent_shape: tuple[int, ...]) -> bool:
    """Both files of shard ``index`` exist with the expected shapes (writes are atomic, so that is enough)."""
    latents_name, labels_name = shard_files(index)
    try:
        return (npy_shape(Path(root) / latents_name)[0] == (count, 2, *latent_shape)
                and npy_shape(Path(root) / labels_name)[0] == (count,))
    except (OSError, ValueError):
        return False


def read_meta(root: str | os.PathLike) -> dict:
    """Load and check ``meta.json`` of a finished extraction."""
    root = Path(root)
    if not root.is_dir():
        raise missing_data_error(root, EXPECTED_LAYOUT)
    path = root / META_FILE
    if not path.is_file():
        raise missing_data_error(path, EXPECTED_LAYOUT + "; the folder exists but has no meta.json "
                                 "(not an extraction, or one that never started)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{str(path)!r} is not a {FORMAT} v{VERSION} file "
                         f"(format={meta.get('format')!r}, version={meta.get('version')!r})")
    if not meta.get("complete"):
        raise RuntimeError(f"the extraction in {str(root)!r} is incomplete ({len(meta.get('shards', []))} shards "
                           "written); rerun visionmix extract-latents with the same arguments to resume it")
    return meta


class LatentDataset(Dataset):
    """Reads a finished ``visionmix extract-latents`` output folder (format in the module docstring)."""

    def __init__(self, root: str | os.PathLike, random_flip: bool = True, class_cond: bool = True):
        self.root = resolve_root(root)
        self.meta = read_meta(self.root)
        self.random_flip = random_flip
        self._rng = AugmentationRNG()
        self.class_cond = class_cond
        self.latent_shape = tuple(self.meta["latent_shape"])
        shards = self.meta["shards"]
        for shard in shards:  # header checks only: a truncated copy fails here, not hours into training
            shape, _ = npy_shape(self.root / shard["latents"])
            if shape != (shard["count"], 2, *self.latent_shape):
                raise ValueError(f"{shard['latents']} in {str(self.root)!r} has shape {shape}, meta.json says "
                                 f"{(shard['count'], 2, *self.latent_shape)}")
        self.labels = np.concatenate([np.load(self.root / s["labels"], allow_pickle=False) for s in shards]) if shards else \
            np.zeros(0, np.int64)
        self._offsets = np.cumsum([0] + [s["count"] for s in shards])
        if self._offsets[-1] != self.meta["count"] or len(self.labels) != self.meta["count"]:
            raise ValueError(f"meta.json in {str(self.root)!r} lists {self._offsets[-1]} latents and "
                             f"{len(self.labels)} labels but count={self.meta['count']}")
        self._maps: dict[int, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        return len(self.meta.get("classes") or [])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _shard(self, s: int) -> np.ndarray:
        if s not in self._maps:
            self._maps[s] = np.load(self.root / self.meta["shards"][s]["latents"], mmap_mode="r",
                                    allow_pickle=False)
        return self._maps[s]

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} latents")
        index = int(index) % len(self)
        s = int(np.searchsorted(self._offsets, index, side="right")) - 1
        flip = int(self.random_flip and self._rng.coin())
        z = torch.from_numpy(np.array(self._shard(s)[index - self._offsets[s], flip], dtype=np.float32))
        label = int(self.labels[index]) if self.class_cond else -1
        return dict(inputs=z, labels=label)

    def __getstate__(self) -> dict:
        # memory maps must not be pickled into DataLoader workers (that would copy the arrays)
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, latent_shape={self.latent_shape}, "
                f"random_flip={self.random_flip})")
