"""Inception Score (Salimans et al. 2016) from classifier logits.

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y|x) = softmax(logits(x)),   p(y) = E_x p(y|x)

computed on each of ``splits`` consecutive, near-equal parts of the samples (part i is rows
``i*N//splits .. (i+1)*N//splits``), reported as the mean and the (population) standard deviation over the parts:
the original code's and ADM's protocol (10 parts of 5,000 for 50,000 samples). Samples are not shuffled, so
the parts are the file's order (``visionmix sample`` draws labels at random, which keeps parts alike).

IS is 1 when every sample gets the same prediction and k when the samples are confidently split evenly over k
classes; its maximum is the number of classes (1008 for FID's Inception, whose logits come without the softmax
bias, see :mod:`visionmix.evaluation.inception`). Terms with ``p(y|x) = 0`` contribute 0 (``0 log 0 = 0``), so
exactly one-hot predictions are scored without NaNs. Everything runs in float64.
"""
from __future__ import annotations

import numpy as np
import torch


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """``(mean, std)`` of the Inception Score of ``logits`` ``(N, classes)`` over ``splits`` parts (N >= splits)."""
    x = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected logits of shape (N, classes >= 2), got {tuple(x.shape)}")
    if splits < 1 or len(x) < splits:
        raise ValueError(f"need at least one sample per split: {len(x)} samples, {splits} splits "
                         "(use fewer splits for small sample counts)")
    if not torch.isfinite(x.logsumexp(dim=1)).all():
        raise ValueError("logits must not be NaN or +inf, nor -inf for every class of a sample")
    log_p = x.log_softmax(dim=1)
    p = log_p.exp()
    n = len(x)
    scores = []
    for i in range(splits):
        part_p, part_log_p = p[i * n // splits:(i + 1) * n // splits], log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = part_p.mean(dim=0).log()
        # where p(y|x) = 0 the term is 0 even if p(y) = 0 too (0 * inf would be NaN)
        terms = torch.where(part_p > 0, part_p * (part_log_p - log_marginal), torch.zeros((), dtype=torch.float64))
        scores.append(float(terms.sum(dim=1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))
