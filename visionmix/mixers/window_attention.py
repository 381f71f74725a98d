"""(Shifted-)window multi-head self-attention, Swin's W-MSA / SW-MSA, registered as ``window_attention``.

    Attention_w(X) = W_o · concat_h softmax(Q_h K_h^T / sqrt(d) + B_h + mask) V_h   inside each M×M window w
    B_h[i, j] = table[(Δr + M - 1)(2M - 1) + (Δc + M - 1), h],   (Δr, Δc) = position_i - position_j

Shapes: x (B, H*W, C) row-major with ``hw`` = (H, W) -> (B, H*W, C); d = C / num_heads. Cost is linear in
H*W: every token attends to the M² tokens of its window. The grid is padded at the bottom/right to
multiples of M; padding keys are masked out (not merely zero tokens as in the official code), so real
outputs never depend on the padding, and the padded outputs are cropped. Shifted layers roll the grid by
(-M//2, -M//2) first and mask pairs that the roll made window-mates without being neighbours (exact -inf
rather than Swin's -100). A grid side shorter than M gets a window spanning that side (rectangular windows
are fine; their bias comes from the central sub-table) and no shift along it.

Options: ``window_size`` M; ``shift`` None alternates W-MSA / SW-MSA with ``layer_id`` (odd layers shifted,
as Swin's blocks), True / False forces it; ``qkv_bias``. Relative-position index and masks are cached per
geometry (``visionmix.layers.relative_position``). Attention runs through
``F.scaled_dot_product_attention`` on (B, nW·heads, M², d) with one float mask (bias + shift + padding);
its kernels accumulate the softmax in fp32 under bf16 autocast.

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from timm.layers import trunc_normal_

from ..layers.init import vit_init_
from ..layers.relative_position import (WindowGeometry, relative_position_index, shifted_window_mask,
                                        window_geometry, window_partition, window_reverse)
from ..registry import MIXERS


@MIXERS.register_module(name="window_attention")
class WindowAttention(nn.Module):
    layout = "tokens"
    accepts_extra_tokens = False

    def __init__(self, dim: int, num_heads: int = 8, *, window_size: int = 8, shift: bool | None = None,
                 qkv_bias: bool = True, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"window_attention width {dim} is not divisible by num_heads={num_heads}")
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_attention window_size must be a positive integer, got {window_size!r}")
        self.num_heads, self.head_dim, self.window_size = num_heads, dim // num_heads, window_size
        self.shifted = layer_id % 2 == 1 if shift is None else bool(shift)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self) -> None:
        vit_init_(self)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, window_size={self.window_size}, shifted={self.shifted}"

    def attention_mask(self, geometry: WindowGeometry, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(1, nW·heads, L, L) float mask: relative-position bias plus the cached shift / padding mask."""
        (wh, ww), (hp, wp) = geometry.window, geometry.padded
        length, num_windows = wh * ww, (hp // wh) * (wp // ww)
        index = relative_position_index(geometry.window, (self.window_size, self.window_size), device)
        bias = self.relative_position_bias_table[index.flatten()].view(length, length, self.num_heads)
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # (1, heads, L, L)
        if geometry.shift != (0, 0) or geometry.padded != tuple(hw):
            bias = bias + shifted_window_mask(tuple(hw), geometry.window, geometry.shift, device).unsqueeze(1)
        # one mask row per (window, head), shared by the batch: matches the (B, nW·heads, L, d) layout below
        return bias.expand(num_windows, -1, -1, -1).reshape(1, num_windows * self.num_heads, length, length)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, length, dim = x.shape
        h, w = hw
        if length != h * w:
            raise ValueError(
                f"window_attention needs exactly H*W = {h}*{w} = {h * w} tokens, got {length}: it partitions the "
                "token grid, so it cannot carry extra (in-context) condition tokens; use conditioning='adaln_zero' "
                "or 'adaln' with it"
            )
        geometry = window_geometry((h, w), self.window_size, self.shifted)
        (wh, ww), (sh, sw), (hp, wp) = geometry
        # qkv is per token, so it commutes with padding, rolling and partitioning: project once, before them
        qkv = F.pad(self.qkv(x).view(batch, h, w, 3 * dim), (0, 0, 0, wp - w, 0, hp - h))
        if sh or sw:
            qkv = torch.roll(qkv, shifts=(-sh, -sw), dims=(1, 2))
        q, k, v = rearrange(window_partition(qkv, (wh, ww)), "b n l (three heads d) -> three b (n heads) l d",
                            three=3, heads=self.num_heads)
        mask = self.attention_mask(geometry, (h, w), x.device).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = rearrange(out, "b (n heads) l d -> b n l (heads d)", heads=self.num_heads)
        out = window_reverse(out, (wh, ww), (hp, wp))
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return self.proj(out[:, :h, :w].reshape(batch, length, dim))
