"""Orthonormal 2-D DCT-II of a grid as two cached matrix products, and radial frequency bands of it.

    D_n[k, i] = α_k cos(π (2i + 1) k / (2n)),   α_0 = sqrt(1/n),  α_k = sqrt(2/n) (k > 0)      (n×n, D Dᵀ = I)
    DCT-II:   X̂ = D_H X D_Wᵀ          inverse (DCT-III):   X = D_Hᵀ X̂ D_W          on (..., H, W) grids
    band(u, v) = min(⌊B · sqrt((u/H)² + (v/W)²)⌋, B - 1)                          B = ``num_bands``

The matrices are built in float64 and cached per (n, device, dtype) (``grid_cache``), so a transform is two
plain matmuls (counted by ``visionmix.flops``), O(H·W·(H + W)) per channel. Frequencies u/H, v/W run over
[0, 1); the bands split the normalised radius into B equal widths of [0, 1), the last one also taking the
corners (radius up to √2). A radius on a band edge goes to the upper band (a 1e-9 guard against rounding).
Used by BAR-Net's band modulation (``visionmix.mixers.band_retnet``).
"""
from __future__ import annotations

import math

import torch

from .cache import grid_cache


@grid_cache(32)
def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n, n) orthonormal DCT-II matrix D: row k is frequency k, so ``D @ x`` transforms the first axis of x."""
    if n < 1:
        raise ValueError(f"DCT length must be positive, got {n}")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    return (scale * torch.cos(math.pi * (2 * i + 1) * k / (2 * n))).to(device=device, dtype=dtype)


def dct_2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II over the last two axes of (..., H, W): D_H x D_Wᵀ (in x's dtype)."""
    h, w = x.shape[-2:]
    return dct_matrix(h, x.device, x.dtype) @ x @ dct_matrix(w, x.device, x.dtype).T


def idct_2d(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct_2d` (orthonormal DCT-III): D_Hᵀ x D_W."""
    h, w = x.shape[-2:]
    return dct_matrix(h, x.device, x.dtype).T @ x @ dct_matrix(w, x.device, x.dtype)


@grid_cache(32)
def radial_bands(h: int, w: int, num_bands: int, device: torch.device) -> torch.Tensor:
    """(H, W) long tensor: the band in 0 .. num_bands - 1 of DCT coefficient (u, v) by its normalised radius."""
    if num_bands < 1:
        raise ValueError(f"num_bands must be positive, got {num_bands}")
    u = torch.arange(h, dtype=torch.float64)[:, None] / h
    v = torch.arange(w, dtype=torch.float64)[None, :] / w
    radius = torch.sqrt(u.square() + v.square())
    band = torch.floor(radius * num_bands + 1e-9).clamp(max=num_bands - 1)
    return band.to(device=device, dtype=torch.long)
