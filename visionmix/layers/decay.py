"""Spatial decay masks of retentive vision mixers (RMT's MaSA; BAR-Net reuses the axial ones).

    γ_h = 1 - 2^(-initial_value - heads_range · h / num_heads),   h = 0 .. num_heads - 1
    Manhattan:  D_h[n, m] = (|r_n - r_m| + |c_n - c_m|) · log γ_h      (heads, H*W, H*W), row-major tokens
    axial:      D_h[i, j] = |i - j| · log γ_h                          (heads, L, L)

The masks are additive log-decays, so ``softmax(logits + D)`` weights token m by γ_h^distance. Head 0
decays fastest (γ = 0.75 with RMT's initial_value=2), the last head is nearly global. The axial masks
are the factors of the Manhattan one: D = D_row ⊕ D_col over (row, column) pairs.

The masks are constants (γ is not learned), so they are built once per (size, γ, device, dtype) and
cached. Paper: Fan et al., "RMT: Retentive Networks Meet Vision Transformers", CVPR 2024.
"""
from __future__ import annotations

import math

import torch

from .cache import grid_cache


def retention_log_gammas(num_heads: int, initial_value: float = 2.0, heads_range: float = 6.0) -> tuple[float, ...]:
    """log γ_h for each head, as a (hashable) tuple of Python floats: the cache key of the masks below."""
    if num_heads < 1:
        raise ValueError(f"num_heads must be positive, got {num_heads}")
    return tuple(math.log1p(-2.0 ** (-initial_value - heads_range * h / num_heads)) for h in range(num_heads))


def _gammas(log_gammas: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(log_gammas, device=device, dtype=dtype)


@grid_cache(16)
def manhattan_decay(h: int, w: int, log_gammas: tuple[float, ...], device: torch.device,
                    dtype: torch.dtype) -> torch.Tensor:
    """(heads, H*W, H*W) additive mask: Manhattan distance between row-major grid tokens times log γ_h."""
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    distance = (rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()
    return distance.to(dtype) * _gammas(log_gammas, device, dtype)[:, None, None]


@grid_cache(32)
def axial_decay(length: int, log_gammas: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(heads, L, L) additive mask along one axis: |i - j| times log γ_h."""
    index = torch.arange(length, device=device)
    distance = (index[:, None] - index[None, :]).abs()
    return distance.to(dtype) * _gammas(log_gammas, device, dtype)[:, None, None]
