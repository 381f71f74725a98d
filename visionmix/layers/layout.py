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

LAYOUTS = ("tokens", "grid")


def layout_of(part: nn.Module | type) -> str:
    """A part's declared layout; parts that declare none compute on tokens."""
    return getattr(part, "layout", "tokens")


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


def require_grid_tokens(x: torch.Tensor, hw: tuple[int, int], mixer: str, reason: str) -> None:
    """Refuse a token sequence that is not exactly the H×W grid, for mixers that read grid positions
    (``reason``: what in the mixer needs them); such mixers cannot carry in-context condition tokens."""
    h, w = hw
    if x.shape[1] != h * w:
        raise ValueError(f"{mixer} needs exactly H*W = {h}*{w} = {h * w} grid tokens ({reason}), got {x.shape[1]}: "
                         "extra condition tokens are not supported, use conditioning='adaln_zero' or 'adaln' with it")
