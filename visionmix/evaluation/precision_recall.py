"""Improved precision and recall (Kynkäänniemi et al. 2019), k-NN manifolds in feature space.

Each set of feature vectors Φ estimates its manifold as a union of closed balls, one per point, whose radius is
the distance to the point's k-th nearest neighbour in Φ (the point itself excluded; duplicates count, at distance 0):

    manifold(Φ) = ∪_{φ ∈ Φ} { x : ||x - φ|| <= r_k(φ) },   r_k(φ) = k-th smallest ||φ' - φ|| over φ' ∈ Φ \\ {φ}
    precision = |{ s ∈ samples   : s ∈ manifold(reference) }| / |samples|     (are the samples realistic?)
    recall    = |{ r ∈ reference : r ∈ manifold(samples)   }| / |reference|   (is the reference covered?)

k = 3 on Inception pool3 features, as ADM's evaluator (``ManifoldEstimator``, ``nhood_sizes=[3]``) and
torch-fidelity (``prc_neighborhood=3``) use. Distances are Euclidean, computed ``batch_size`` rows at a time so
memory stays at ``batch_size x N`` distances (50k x 50k features fit on one GPU or in RAM); float64 inputs are
computed in float64, everything else in float32, on ``device`` (default: where the inputs are).
"""
from __future__ import annotations

import numpy as np
import torch

DEFAULT_K = 3


def _as_features(x: np.ndarray | torch.Tensor, name: str, device: torch.device | str | None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} features must be (N, D), got shape {tuple(t.shape)}")
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.to(device if device is not None else t.device, dtype)


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K, batch_size: int = 2000) -> torch.Tensor:
    """``r_k`` of every row of ``features`` ``(N, D)``: distance to its k-th nearest other row, ``(N,)``."""
    if len(features) <= k:
        raise ValueError(f"need more than k={k} points to find each one's k-th neighbour, got {len(features)}")
    radii = []
    for chunk in features.split(batch_size):
        # the point itself is among the candidates at distance 0, hence the (k+1)-th smallest
        radii.append(torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Whether each of ``points`` lies in some closed ball ``(centres[j], radii[j])``."""
    inside = [(torch.cdist(chunk, centres) <= radii[None, :]).any(dim=1) for chunk in points.split(batch_size)]
    return torch.cat(inside)


def precision_recall(reference: np.ndarray | torch.Tensor, samples: np.ndarray | torch.Tensor, k: int = DEFAULT_K,
                     batch_size: int = 2000, device: torch.device | str | None = None) -> dict[str, float]:
    """``{"precision", "recall"}`` of ``samples`` ``(M, D)`` against ``reference`` ``(N, D)`` (see above)."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive integers, got k={k}, batch_size={batch_size}")
    ref, gen = _as_features(reference, "reference", device), _as_features(samples, "sample", device)
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"reference and sample features differ in width: {ref.shape[1]} vs {gen.shape[1]}")
    dtype = torch.promote_types(ref.dtype, gen.dtype)
    ref, gen = ref.to(gen.device, dtype), gen.to(dtype)
    with torch.no_grad():
        precision = _covered(gen, ref, knn_radii(ref, k, batch_size), batch_size).double().mean()
        recall = _covered(ref, gen, knn_radii(gen, k, batch_size), batch_size).double().mean()
    return {"precision": float(precision), "recall": float(recall)}
