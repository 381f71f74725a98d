"""The two layouts a part can compute in, and the conversions between them.

``"tokens"``: (B, N, C) with N = H*W row-major (transformer style); ``"grid"``: (B, C, H, W) (conv style).
Parts declare ``layout`` as a class attribute (``"any"`` for pointwise parts that take either), so a scaffold
converts once per stage instead of once per block.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange
from timm.layers import LayerNorm2d


def to_layout(x: torch.Tensor, layout: str, hw: tuple[int, int]) -> torch.Tensor:
    """Convert ``x`` (either layout, told apart by ndim) to ``layout``; a no-op when it is already there."""
    if layout == "grid" and x.ndim == 3:
        return rearrange(x, "b (h w) c -> b c h w", h=hw[0], w=hw[1])
    if layout == "tokens" and x.ndim == 4:
        return rearrange(x, "b c h w -> b (h w) c")
    return x


def channel_norm(dim: int, layout: str, eps: float = 1e-6, affine: bool = False) -> nn.Module:
    """LayerNorm over channels in either layout (timm's LayerNorm2d for grids)."""
    if layout == "grid":
        return LayerNorm2d(dim, eps=eps, affine=affine)
    return nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
