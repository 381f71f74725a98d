"""The 8x8 handwritten digits bundled with scikit-learn, as a tiny class-conditional image data set.

``sklearn.datasets.load_digits`` ships 1797 grey 8x8 digits (UCI "optdigits" test set) with values
0..16 and labels 0..9, so quick experiments and CI need no download. Values become uint8 by
``round(v * 255 / 16)``. A fixed stratified split (80 % train / 20 % test, shuffled with ``seed``) is
defined here once, :func:`digits_split`, and shared by :class:`DigitsDataset` and the digits quality
check in ``visionmix.evaluation.digits`` so the scorer never sees the test images during training.

Items are ``dict(inputs=uint8 (1, image_size, image_size), labels=int 0..9)`` (-1 when
``class_cond=False``). ``image_size`` other than 8 resamples the whole set once with
``interpolation="nearest"`` (default: pixel replication, exact when ``image_size`` is a multiple of 8,
and what area averaging inverts exactly) or ``"bilinear"`` (smooth, ``align_corners=False``).
Flipping is off by default: mirrored digits are not digits.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .images import AugmentationRNG, random_hflip

SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2


@lru_cache(maxsize=None)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    labels = digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # cached and shared: nobody may edit them
    return images, labels


@lru_cache(maxsize=None)
def split_indices(split: str, seed: int = 0) -> np.ndarray:
    """Sorted indices into the 1797 digits for ``split`` ("train", "test" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"unknown digits split {split!r}; choose one of {SPLITS}")
    images, labels = _load()
    everything = np.arange(len(labels))
    if split == "all":
        everything.flags.writeable = False
        return everything
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(everything, test_size=TEST_FRACTION, stratify=labels, random_state=seed)
    idx = np.sort(train if split == "train" else test)
    idx.flags.writeable = False
    return idx


def digits_split(split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (N, 8, 8), int64 labels (N,))`` of one split (fresh copies)."""
    images, labels = _load()
    idx = split_indices(split, seed)
    return images[idx].copy(), labels[idx].copy()


def resize_digits(images: torch.Tensor, image_size: int, interpolation: str = "nearest") -> torch.Tensor:
    """uint8 (N, 1, 8, 8) -> uint8 (N, 1, image_size, image_size)."""
    if image_size == images.shape[-1]:
        return images
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    kwargs = dict(align_corners=False) if interpolation == "bilinear" else {}
    out = F.interpolate(images.float(), size=(image_size, image_size), mode=interpolation, **kwargs)
    return out.round().clamp(0, 255).to(torch.uint8)


class DigitsDataset(Dataset):
    """sklearn digits as ``dict(inputs=uint8 (1, S, S), labels=int)``; see the module docstring."""

    num_classes = 10

    def __init__(self, image_size: int = 8, split: str = "train", random_flip: bool = False, seed: int = 0,
                 interpolation: str = "nearest", class_cond: bool = True):
        self.image_size = int(image_size)
        self.split = split
        self.random_flip = random_flip
        self._rng = AugmentationRNG()
        self.seed = seed
        self.class_cond = class_cond
        images, labels = digits_split(split, seed)
        self.images = resize_digits(torch.from_numpy(images)[:, None], self.image_size, interpolation)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        label = int(self.labels[index]) if self.class_cond else -1
        return dict(inputs=random_hflip(self.images[index], self.random_flip, self._rng).clone(), labels=label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)}, image_size={self.image_size})"
