"""Shared image-file plumbing: find image files, decode them robustly, turn them into uint8 tensors.

Image datasets return ``inputs`` as a ``uint8`` tensor of shape ``(C, H, W)``; the model's data
preprocessor maps it to ``[-1, 1]``. Decoding failures follow one policy, implemented once here
(:class:`ReadableImages`): an unreadable file is skipped with a :class:`CorruptImageWarning` naming it
(once per file and process), and the next readable file in index order is returned instead. One bad
JPEG among 1.28M should not kill a week-long run, but a folder with nothing readable is an error,
not an infinite loop.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".gif")

# what a broken, truncated or non-image file raises from Image.open/load (UnidentifiedImageError is an OSError)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class CorruptImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files below ``folder`` (any depth, symlinks followed), in a deterministic sorted order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()  # os.walk visits in this order: sorting makes the listing reproducible
        found.extend(Path(dirpath) / f for f in sorted(filenames) if is_image_file(f))
    return found


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` fully (PIL is lazy: a truncated file only fails on ``load``) as an RGB image."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def to_uint8_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """PIL image or (H, W[, C]) uint8 array -> contiguous uint8 tensor (C, H, W)."""
    array = np.array(image, dtype=np.uint8, copy=True)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class AugmentationRNG:
    """A dataset's own random stream for augmentation, seeded per process from that process's torch seed.

    In the main process that is the run's seed; in DataLoader workers, each worker's seed. Keeping it
    apart from the global generator matters for exact resume: mmengine replays the data loader after
    restoring a checkpoint, and that replay must not consume the generator that draws noise and timesteps.
    """

    def __init__(self) -> None:
        self._pid: int | None = None
        self._generator = torch.Generator()

    def __call__(self) -> torch.Generator:
        if self._pid != os.getpid():  # first use in this process (a forked or spawned worker included)
            self._generator.manual_seed(torch.initial_seed() % (2**63))
            self._pid = os.getpid()
        return self._generator

    def coin(self, p: float = 0.5) -> bool:
        return torch.rand((), generator=self()).item() < p


def random_hflip(x: torch.Tensor, enabled: bool, rng: AugmentationRNG, p: float = 0.5) -> torch.Tensor:
    """Flip the last (width) axis with probability ``p``, drawing from the dataset's own ``rng``."""
    if enabled and rng.coin(p):
        return x.flip(-1)
    return x


class ReadableImages:
    """Index -> decoded image, skipping undecodable files (see the module docstring for the policy)."""

    def __init__(self, paths: Sequence[str | os.PathLike], root: str | os.PathLike):
        # paths relative to root in one numpy bytes array (~40 MB for ImageNet), not a list of Path objects:
        # forked DataLoader workers would touch every list element's refcount and copy them all per worker
        self.root = Path(root)
        prefix = os.path.join(os.fspath(self.root), "")
        relative = (p[len(prefix):] if p.startswith(prefix) else os.path.relpath(p, self.root)
                    for p in map(os.fspath, paths))  # slicing: relpath is slow for a million files
        self._relative = np.array([os.fsencode(p) for p in relative], dtype=bytes)
        self._bad: set[int] = set()  # per process: DataLoader workers each keep their own

    def path(self, index: int) -> Path:
        return self.root / os.fsdecode(self._relative[index])

    def __len__(self) -> int:
        return len(self._relative)

    def load(self, index: int) -> tuple[int, Image.Image]:
        """Return ``(j, image)`` where ``j`` is ``index`` or the next readable index after it (cyclic)."""
        n = len(self)
        if not -n <= index < n:  # the cyclic search below must not turn a bad index into a valid one
            raise IndexError(f"index {index} out of range for {n} images")
        for step in range(n):
            j = (index + step) % n
            if j in self._bad:
                continue
            try:
                return j, open_rgb(self.path(j))
            except DECODE_ERRORS as exc:
                self._bad.add(j)
                warnings.warn(f"skipping unreadable image {str(self.path(j))!r}: {exc}",
                              CorruptImageWarning, stacklevel=3)
        raise RuntimeError(f"none of the {n} image files under {os.fspath(self.root)!r} can be decoded "
                           f"(see the CorruptImageWarning messages); check the copy of the data set")
