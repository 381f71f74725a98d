"""Depthwise convolution over the token grid: LePE (locally-enhanced positional encoding) and RELA's rank boost.

    lepe(v)_t = sum_{(dy, dx) in k×k} w_c[dy, dx] · v_{t + (dy, dx)} + b_c     (zero padding, per channel c)

One module serves CSWin/RMT/RALA's LePE (k=5 on v, added to the attention output) and FLatten/RELA's
depthwise "rank enhancement" (k=3/5 on v): both are a depthwise k×k conv read on the H×W grid.
Shapes: (B, H*W, C) tokens with ``hw`` -> (B, H*W, C), or (B, C, H, W) grids unchanged in layout.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange


class DepthwiseConvPE(nn.Module):
    """Depthwise ``kernel_size``×``kernel_size`` convolution with bias, same-size output (odd kernels only)."""

    def __init__(self, dim: int, kernel_size: int = 5):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"depthwise conv kernel_size must be odd and positive, got {kernel_size}")
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def init_weights(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
        if x.ndim == 4:
            return self.conv(x)
        h, w = hw
        if x.shape[1] != h * w:
            raise ValueError(f"depthwise conv needs exactly H*W = {h * w} tokens, got {x.shape[1]}")
        grid = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        return rearrange(self.conv(grid), "b c h w -> b (h w) c")
