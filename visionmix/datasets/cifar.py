"""CIFAR-10 from the official "python version" archive (``cifar-10-python.tar.gz``, extracted).

Layout: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (``root`` may also be the
``cifar-10-batches-py`` folder itself). Each batch is a pickled dict with ``b"data"``: uint8
``(10000, 3072)`` rows holding the R, G and B 32x32 planes in that order, and ``b"labels"``: ints 0..9.

The batches are read with a restricted unpickler that can only rebuild numpy arrays, so a tampered
file cannot run code. Items are ``dict(inputs=uint8 (3, 32, 32), labels=int)``; ``labels`` is -1 ("no
label") when ``class_cond=False``, the unconditional CIFAR-10 setting of DDPM / U-ViT / Diffusion-RWKV.
"""
from __future__ import annotations

import codecs
import importlib
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import AugmentationRNG, random_hflip
from .paths import missing_data_error, resolve_root

BATCH_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
EXPECTED_LAYOUT = (f"the CIFAR-10 python version as <root>/{BATCH_DIR}/data_batch_1..5 and test_batch "
                   "(extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)")


def _numpy_private(module: str, name: str):
    """numpy >= 2 moved ``numpy.core`` to ``numpy._core``; old pickles (the real CIFAR files) name the former."""
    try:
        return getattr(importlib.import_module(module.replace("numpy.core.", "numpy._core.")), name)
    except ImportError:  # pragma: no cover - numpy 1.x
        return getattr(importlib.import_module(module.replace("numpy._core.", "numpy.core.")), name)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Allows exactly the globals a pickled dict of numpy arrays, lists and bytes needs."""

    ARRAY_BUILDERS = {("multiarray", "_reconstruct"), ("numeric", "_frombuffer")}  # protocols <= 4 / 5

    def find_class(self, module: str, name: str):
        package, _, submodule = module.rpartition(".")
        if package in ("numpy.core", "numpy._core") and (submodule, name) in self.ARRAY_BUILDERS:
            return _numpy_private(module, name)
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                   ("_codecs", "encode"): codecs.encode}  # codecs.encode: how python 3 stores bytes at protocol 2
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return allowed[(module, name)]


def load_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    with open(path, "rb") as f:
        batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise ValueError(f"{os.fspath(path)!r}: {len(data)} images but {len(labels)} labels")
    return data, labels


def find_batch_dir(root: Path) -> Path:
    """``root`` itself when it holds the batches, else ``root/cifar-10-batches-py``."""
    for candidate in (root, root / BATCH_DIR):
        if (candidate / TEST_FILES[0]).is_file() or (candidate / TRAIN_FILES[0]).is_file():
            return candidate
    raise missing_data_error(root, EXPECTED_LAYOUT)


class CIFAR10Dataset(Dataset):
    """CIFAR-10 train (50k) or test (10k) split, held in memory (150 MB for train)."""

    num_classes = 10

    def __init__(self, root: str | os.PathLike, train: bool = True, random_flip: bool = True,
                 class_cond: bool = True):
        self.root = resolve_root(root)
        self.batch_dir = find_batch_dir(self.root)
        self.train = train
        self.random_flip = random_flip
        self._rng = AugmentationRNG()
        self.class_cond = class_cond
        names = TRAIN_FILES if train else TEST_FILES
        missing = [n for n in names if not (self.batch_dir / n).is_file()]
        if missing:
            raise missing_data_error(self.batch_dir, EXPECTED_LAYOUT + f"; missing {', '.join(missing)}")
        parts = [load_batch(self.batch_dir / n) for n in names]
        self.images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.labels = np.concatenate([p[1] for p in parts])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        label = int(self.labels[index]) if self.class_cond else -1
        # clone: a view would drag the whole 150 MB array into shared memory when a worker sends it
        return dict(inputs=random_hflip(self.images[index], self.random_flip, self._rng).clone(), labels=label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dir={str(self.batch_dir)!r}, train={self.train}, n={len(self)})"
