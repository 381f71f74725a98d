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
from timm.layers import trunc_normal_


class DepthwiseConvPE(nn.Module):
    """Depthwise ``kernel_size``×``kernel_size`` convolution with bias, same-size output (odd kernels only)."""

    def __init__(self, dim: int, kernel_size: int = 5, init_std: float | None = None):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"depthwise conv kernel_size must be odd and positive, got {kernel_size}")
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.init_std = init_std

    def init_weights(self) -> None:
        """PyTorch's conv init, or trunc-normal(``init_std``) with a zero bias (the official codes that init
        every conv that way: RALA, SecViT, SSViT)."""
        if self.init_std is None:
            self.conv.reset_parameters()
            return
        trunc_normal_(self.conv.weight, std=self.init_std)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
        if x.ndim == 4:
            return self.conv(x)
        h, w = hw
        if x.shape[1] != h * w:
            raise ValueError(f"depthwise conv needs exactly H*W = {h * w} tokens, got {x.shape[1]}")
        grid = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        return rearrange(self.conv(grid), "b c h w -> b (h w) c")


def optional_lepe(dim: int, kernel_size: int, owner: str, init_std: float | None = 0.02) -> DepthwiseConvPE | None:
    """A mixer's LePE option: None for ``kernel_size=0``, else the depthwise conv (an odd size, or an error
    naming the mixer)."""
    if kernel_size == 0:
        return None
    if kernel_size < 0 or kernel_size % 2 == 0:
        raise ValueError(f"{owner} lepe_kernel_size must be 0 (off) or an odd positive integer, got {kernel_size}")
    return DepthwiseConvPE(dim, kernel_size, init_std)
