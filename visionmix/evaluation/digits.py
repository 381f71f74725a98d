"""Sample-quality check for class-conditional models trained on the bundled 8x8 digits.

A small classifier (scikit-learn ``MLPClassifier``: 64 inputs -> 64 ReLU units -> 10 classes, trained on
the ``DigitsDataset`` train split with pixels scaled to [0, 1]) plays the role Inception plays for FID:

* ``agreement``: the fraction of samples it classifies as the class they were generated for — does the
  model obey its label? (the classifier itself scores about 0.97 on held-out real digits);
* ``frechet``: the Fréchet distance (FID's formula, ``visionmix.evaluation.frechet``) between Gaussian
  fits of the classifier's 64-d hidden ReLU activations for the samples and for the real test-split
  digits — do the samples look like real digits, with real diversity?
* ``per_class``: agreement per requested class.

Samples are float tensors in [-1, 1] of shape ``(N, 1, H, W)``; ``H, W >= 8`` are area-averaged down to
8x8 (this inverts the nearest-neighbour upsampling ``DigitsDataset`` applies). Like FID, ``frechet`` is
biased upwards for small N: compare models at equal sample counts (the real test split has 360 digits).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.digits import digits_split
from .frechet import frechet_distance, gaussian_stats

NUM_CLASSES = 10


def to_pixels(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """float [-1, 1] ``(N, 1, H, W)`` -> float64 ``(N, 64)`` in [0, 1], area-averaged to 8x8."""
    x = torch.as_tensor(images).detach().to("cpu", torch.float64)
    if x.ndim != 4 or x.shape[1] != 1 or min(x.shape[-2:]) < 8:
        raise ValueError(f"expected digit images of shape (N, 1, H>=8, W>=8) in [-1, 1], got {tuple(x.shape)}")
    if x.shape[-2:] != (8, 8):
        x = F.adaptive_avg_pool2d(x, (8, 8))
    return ((x.clamp(-1, 1) + 1) / 2).reshape(len(x), 64).numpy()


def _real_pixels(split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits_split(split, seed)
    return images.reshape(len(images), 64) / 255.0, labels


@lru_cache(maxsize=None)
def _fit_cached(seed: int, hidden: int) -> "DigitsScorer":
    from sklearn.neural_network import MLPClassifier

    x_train, y_train = _real_pixels("train", seed)
    classifier = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=1000, random_state=seed)
    classifier.fit(x_train, y_train)
    return DigitsScorer(classifier, seed)


class DigitsScorer:
    """Digit classifier + real-data feature statistics; build it with :meth:`fit`. Read-only once built."""

    feature_name = "MLP hidden ReLU activations"

    def __init__(self, classifier, seed: int):
        self.classifier = classifier
        self.seed = seed
        x_test, y_test = _real_pixels("test", seed)
        self.heldout_accuracy = float((classifier.predict(x_test) == y_test).mean())
        self.reference_mu, self.reference_sigma = gaussian_stats(self._hidden(x_test))

    @classmethod
    def fit(cls, seed: int = 0, hidden: int = 64) -> "DigitsScorer":
        """Train on the digits train split of ``seed`` (about 1.5 s; cached per ``(seed, hidden)``)."""
        return _fit_cached(int(seed), int(hidden))

    def _hidden(self, pixels: np.ndarray) -> np.ndarray:
        # the MLP's first layer, recomputed from its weights: sklearn exposes only the final outputs
        return np.maximum(pixels @ self.classifier.coefs_[0] + self.classifier.intercepts_[0], 0.0)

    def features(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """``(N, hidden)`` embedding used for the Fréchet distance."""
        return self._hidden(to_pixels(images))

    def predict(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Predicted digit ``(N,)`` for float [-1, 1] images ``(N, 1, H, W)``."""
        return self.classifier.predict(to_pixels(images))

    def real_images(self, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """Real digits of ``split`` in the sample format: float [-1, 1] ``(N, 1, 8, 8)`` and labels ``(N,)``."""
        images, labels = digits_split(split, self.seed)
        return torch.from_numpy(images).float().div(127.5).sub(1)[:, None], torch.from_numpy(labels)

    def score(self, images: torch.Tensor | np.ndarray,
              requested_labels: torch.Tensor | np.ndarray | Sequence[int] | None) -> dict:
        """``dict(agreement, frechet, per_class, num_samples)`` for samples generated for ``requested_labels``.

        ``requested_labels=None`` (an unconditional model) reports ``frechet`` only; ``agreement`` and
        ``per_class`` are then None. ``per_class`` maps each requested class to its agreement.
        """
        pixels = to_pixels(images)
        mu, sigma = gaussian_stats(self._hidden(pixels))
        result = dict(agreement=None, frechet=frechet_distance(mu, sigma, self.reference_mu, self.reference_sigma),
                      per_class=None, num_samples=len(pixels))
        if requested_labels is None:
            return result
        requested = torch.as_tensor(requested_labels).cpu().numpy().astype(np.int64).reshape(-1)
        if len(requested) != len(pixels) or requested.min() < 0 or requested.max() >= NUM_CLASSES:
            raise ValueError(f"need one requested label in 0..9 per image: {len(pixels)} images, "
                             f"labels {requested.tolist()[:10]}{'...' if len(requested) > 10 else ''}")
        hit = self.classifier.predict(pixels) == requested
        result["agreement"] = float(hit.mean())
        result["per_class"] = {int(c): float(hit[requested == c].mean()) for c in np.unique(requested)}
        return result
