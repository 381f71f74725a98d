"""Sample and reference batches in the ADM evaluation suite's ``.npz`` format, and reference statistics.

A batch file (``visionmix sample``'s output, ADM's ``VIRTUAL_imagenet256_labeled.npz``, ...) holds

* ``arr_0``: uint8 images ``(N, H, W, C)``, C = 3 (or 1), the only key a *sample* batch needs;
* ``labels``: optional ``(N,)`` class ids (read, never required);
* ``mu`` ``(D,)`` and ``sigma`` ``(D, D)``: the mean and covariance of the images' Inception pool3 features
  (ADM's reference batches carry them; ``mu_s`` / ``sigma_s``, ADM's spatial statistics for sFID, are ignored);
* ``features``: ``(N, D)`` pool3 features, written by :func:`save_reference` so that precision/recall against
  a reference needs no Inception pass over its images.

A *reference* needs ``mu`` and ``sigma``, or ``features``, or ``arr_0`` (from which both are computed). Statistics
follow :func:`visionmix.evaluation.frechet.gaussian_stats` (mean, unbiased covariance), as ADM's evaluator.
Files are opened with ``allow_pickle=False`` and read lazily: a reference with precomputed statistics never loads
its images. :func:`save_reference` writes atomically (a temporary file in the same folder, then a rename).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic_write import atomic_path

from .frechet import gaussian_stats


def _open(path: str | os.PathLike, what: str):
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path.absolute()}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {what} {path}: not an .npz written by numpy ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{what} {path} is a single .npy array, expected an .npz with arr_0 (images)")
    return data


def check_images(images: np.ndarray, source: str) -> np.ndarray:
    """``images`` if it is a uint8 ``(N >= 1, H, W, 1 or 3)`` array, else a ValueError naming ``source``."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"{source}: arr_0 must hold uint8 images (N, H, W, 3) as visionmix sample and ADM write "
                         f"them, got {images.dtype} {images.shape}")
    return images


def load_batch(path: str | os.PathLike) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Images (uint8 ``(N, H, W, C)``) and labels (or None) of a sample batch ``.npz``."""
    with _open(path, "samples file") as data:
        if "arr_0" not in data.files:
            raise ValueError(f"{path} has no arr_0 (images); its arrays are {', '.join(data.files) or 'none'}: "
                             "pass an .npz written by visionmix sample or in ADM's format")
        images = check_images(data["arr_0"], str(path))
        labels = data["labels"] if "labels" in data.files else None
    return images, labels


@dataclass
class Reference:
    """What a reference file offers: statistics, features, and (lazily) its images."""

    path: str
    mu: Optional[np.ndarray] = None
    sigma: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None
    has_images: bool = False
    num_images: Optional[int] = None

    def images(self) -> np.ndarray:
        """The reference's ``arr_0`` images (read from the file now)."""
        if not self.has_images:
            raise ValueError(f"{self.path} has no arr_0 (images)")
        with _open(self.path, "reference") as data:
            return check_images(data["arr_0"], self.path)

    def describe(self) -> str:
        parts = []
        if self.mu is not None:
            parts.append("precomputed mu/sigma")
        if self.features is not None:
            parts.append(f"{len(self.features)} precomputed features")
        if self.has_images:
            parts.append(f"{self.num_images} images")
        return f"{self.path} ({', '.join(parts)})"


def load_reference(path: str | os.PathLike) -> Reference:
    """Read a reference ``.npz``'s statistics and features (not its images) and check they fit together."""
    with _open(path, "reference") as data:
        keys = set(data.files)
        if ("mu" in keys) != ("sigma" in keys):
            raise ValueError(f"{path} has {'mu' if 'mu' in keys else 'sigma'} without "
                             f"{'sigma' if 'mu' in keys else 'mu'}: a reference needs both (or neither)")
        if not keys & {"mu", "features", "arr_0"}:
            raise ValueError(f"{path} is not a reference batch: it has none of arr_0 (images), mu/sigma "
                             f"(statistics) or features; its arrays are {', '.join(sorted(keys)) or 'none'}")
        ref = Reference(str(path), has_images="arr_0" in keys)
        if "mu" in keys:
            ref.mu, ref.sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
            d = ref.mu.shape[0] if ref.mu.ndim == 1 else -1
            if d < 1 or ref.sigma.shape != (d, d):
                raise ValueError(f"{path}: mu must be (D,) and sigma (D, D), got {ref.mu.shape} and {ref.sigma.shape}")
        if "features" in keys:
            ref.features = data["features"]
            if ref.features.ndim != 2 or (ref.mu is not None and ref.features.shape[1] != len(ref.mu)):
                raise ValueError(f"{path}: features must be (N, D) with D = len(mu), got {ref.features.shape}")
        if ref.has_images:
            # the shape is in the member's header: no need to decompress the images to count them
            ref.num_images = _leading_dim(data, "arr_0")
    return ref


def _leading_dim(data, key: str) -> int:
    """Length of an array in an open .npz, read from its header: the images are not decompressed to count them."""
    with data.zip.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape = np.lib.format.read_array_header_1_0(member)[0]
        elif version == (2, 0):
            shape = np.lib.format.read_array_header_2_0(member)[0]
        else:  # a header format these readers do not know: load the array
            shape = data[key].shape
    return int(shape[0]) if shape else 0


def complete_reference(ref: Reference, extract: Callable[[np.ndarray], np.ndarray], need_features: bool) -> Reference:
    """Fill in what ``ref`` lacks: features from its images (with ``extract``: images -> ``(N, D)``) when
    ``need_features`` or when there are no statistics, then ``mu``/``sigma`` from the features."""
    if ref.features is None and (need_features or ref.mu is None):
        if not ref.has_images:
            raise ValueError(f"{ref.path} has statistics (mu/sigma) but neither images (arr_0) nor features: "
                             "precision/recall need one of them; drop 'pr' from --metrics or use a reference "
                             "with images")
        ref.features = extract(ref.images())
    if ref.mu is None:
        ref.mu, ref.sigma = gaussian_stats(ref.features)
    return ref


def save_reference(path: str | os.PathLike, features: np.ndarray | None = None, mu: np.ndarray | None = None,
                   sigma: np.ndarray | None = None) -> None:
    """Write a reference ``.npz`` (``mu``, ``sigma`` and, when given, ``features``) atomically; statistics
    missing from the arguments are computed from ``features``."""
    if mu is None or sigma is None:
        if features is None:
            raise ValueError("save_reference needs features, or both mu and sigma")
        mu, sigma = gaussian_stats(features)
    arrays = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64)}
    if features is not None:
        arrays["features"] = np.asarray(features, np.float32)
    with atomic_path(path) as temp, open(temp, "wb") as f:  # a file object: np.savez appends '.npz' to a name
        np.savez(f, **arrays)
