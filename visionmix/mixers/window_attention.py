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
as Swin's blocks), True / False forces it; ``qkv_bias``. Swin-V2's two changes, off by default (V1):

- ``cosine=True``: logits cos(Q_h, K_h) · τ_h with τ_h = exp(min(s_h, log 100)), s_h a learned per-head
  ``logit_scale`` initialised to log 10 (scaled cosine attention, no 1/sqrt(d)).
- ``position_bias="continuous"``: B_h[i, j] = 16 · sigmoid(MLP(φ(Δr), φ(Δc)))_h, MLP 2 -> 512 -> heads
  (ReLU, no output bias; ``cpb_mlp``), φ(Δ) = sign(Δ) · log2(1 + 8|Δ| / (M₀ - 1)) / log2(8) with M₀ the
  window the mixer was built with (V2's "pretrained window"; 2 when M₀ = 1). No table is tied to the window,
  so ``window_size`` may be reassigned (on one mixer, or ``set_window_size(model, m)`` on a whole model),
  e.g. to sample with window 12 a model trained with window 8; offsets both windows hold get the same bias.
  With the default ``"table"`` a reassignment is an error.

Not taken from V2: res-post-norm (the block's business) and dropping the key bias (``qkv_bias`` keeps it).
Relative-position index, log-spaced coordinates and masks are cached per geometry
(``visionmix.layers.relative_position``). Attention runs through ``F.scaled_dot_product_attention`` on
(B, nW·heads, M², d) with one float mask (bias + shift + padding); its kernels accumulate the softmax in
fp32 under bf16 autocast; the continuous bias MLP runs in the parameters' dtype.

Papers: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021;
Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from timm.layers import trunc_normal_

from ..contract import Grid, Scheme, TokenMixer
from ..layers.init import vit_init_
from ..layers.relative_position import (WindowGeometry, log_relative_coords, relative_position_index,
                                        shifted_window_mask, window_geometry, window_partition, window_reverse)
from ..registry import MIXERS

POSITION_BIASES = ("table", "continuous")


@MIXERS.register_module(name="window_attention")
class WindowAttention(TokenMixer):
    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "it partitions the token grid into windows"

    def __init__(self, dim: int, num_heads: int = 8, *, window_size: int = 8, shift: bool | None = None,
                 qkv_bias: bool = True, cosine: bool = False, position_bias: str = "table", layer_id: int = 0,
                 num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"window_attention width {dim} is not divisible by num_heads={num_heads}")
        if position_bias not in POSITION_BIASES:
            raise ValueError(f"window_attention position_bias must be one of {POSITION_BIASES}, got {position_bias!r}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.cosine, self.position_bias = bool(cosine), position_bias
        self.built_window = self._check_window(window_size)  # the bias table's M, or the continuous bias's M₀
        self._window_size = window_size
        self.shifted = layer_id % 2 == 1 if shift is None else bool(shift)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if self.cosine:
            self.logit_scale = nn.Parameter(torch.empty(num_heads, 1, 1))
        if position_bias == "table":
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        else:
            self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(), nn.Linear(512, num_heads, bias=False))
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    @staticmethod
    def _check_window(window_size: int) -> int:
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_attention window_size must be a positive integer, got {window_size!r}")
        return window_size

    @property
    def window_size(self) -> int:
        return self._window_size

    @window_size.setter
    def window_size(self, value: int) -> None:
        """Change the window (e.g. at inference): only the continuous bias has no table tied to the window."""
        self._check_window(value)
        if value != self.built_window and self.position_bias != "continuous":
            raise ValueError(
                f"window_attention window_size can change only with position_bias='continuous': the bias table "
                f"of this mixer is tied to the window it was built with ({self.built_window}), got {value}")
        self._window_size = value

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)  # also cpb_mlp's Linears, as Swin-V2's model-wide init
        if self.position_bias == "table":
            trunc_normal_(self.relative_position_bias_table, std=0.02)
        if self.cosine:
            nn.init.constant_(self.logit_scale, math.log(10.0))

    def extra_repr(self) -> str:
        v2 = f", cosine={self.cosine}, position_bias={self.position_bias!r}" if self.cosine or \
            self.position_bias != "table" else ""
        return f"heads={self.num_heads}, window_size={self.window_size}, shifted={self.shifted}{v2}"

    def relative_bias(self, window: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(heads, L, L) position bias B_h[i, j] of one window of ``window`` = (rows, cols), L = rows · cols."""
        length = window[0] * window[1]
        if self.position_bias == "table":
            index = relative_position_index(window, (self.built_window, self.built_window), device)
            bias = self.relative_position_bias_table[index.flatten()]
        else:
            weight = self.cpb_mlp[0].weight
            coords = log_relative_coords(window, (self.built_window, self.built_window), device, weight.dtype)
            with torch.autocast(device.type, enabled=False):  # a tiny MLP: keep the bias in the params' dtype
                table = 16 * torch.sigmoid(self.cpb_mlp(coords))  # ((2 rows - 1)(2 cols - 1), heads)
            bias = table[relative_position_index(window, window, device).flatten()]
        return bias.view(length, length, self.num_heads).permute(2, 0, 1)

    def attention_mask(self, geometry: WindowGeometry, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(1, nW·heads, L, L) float mask: relative-position bias plus the cached shift / padding mask."""
        (wh, ww), (hp, wp) = geometry.window, geometry.padded
        length, num_windows = wh * ww, (hp // wh) * (wp // ww)
        bias = self.relative_bias(geometry.window, device).unsqueeze(0)  # (1, heads, L, L)
        if geometry.shift != (0, 0) or geometry.padded != tuple(hw):
            bias = bias + shifted_window_mask(tuple(hw), geometry.window, geometry.shift, device).unsqueeze(1)
        # one mask row per (window, head), shared by the batch: matches the (B, nW·heads, L, d) layout below
        return bias.expand(num_windows, -1, -1, -1).reshape(1, num_windows * self.num_heads, length, length)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        batch, length, dim = x.shape
        h, w = grid.hw
        geometry = window_geometry((h, w), self.window_size, self.shifted)
        (wh, ww), (sh, sw), (hp, wp) = geometry
        # qkv is per token, so it commutes with padding, rolling and partitioning: project once, before them
        qkv = F.pad(self.qkv(x).view(batch, h, w, 3 * dim), (0, 0, 0, wp - w, 0, hp - h))
        if sh or sw:
            qkv = torch.roll(qkv, shifts=(-sh, -sw), dims=(1, 2))
        q, k, v = rearrange(window_partition(qkv, (wh, ww)), "b n l (three heads d) -> three b n heads l d",
                            three=3, heads=self.num_heads)
        scale = None
        if self.cosine:  # padding tokens are zero vectors: F.normalize keeps them zero (its eps), never NaN
            tau = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()  # (heads, 1, 1)
            q, k, scale = (F.normalize(q, dim=-1) * tau).to(v.dtype), F.normalize(k, dim=-1).to(v.dtype), 1.0
        q, k, v = (t.flatten(1, 2) for t in (q, k, v))  # (B, nW·heads, L, d)
        mask = self.attention_mask(geometry, (h, w), x.device).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        out = rearrange(out, "b (n heads) l d -> b n l (heads d)", heads=self.num_heads)
        out = window_reverse(out, (wh, ww), (hp, wp))
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return self.proj(out[:, :h, :w].reshape(batch, length, dim))


def set_window_size(model: nn.Module, window_size: int) -> int:
    """Set the window of every ``WindowAttention`` in ``model`` (each needs the continuous position bias, see the
    module docstring); all or none change. Returns how many mixers it set."""
    mixers = [m for m in model.modules() if isinstance(m, WindowAttention)]
    before = [m.window_size for m in mixers]
    try:
        for mixer in mixers:
            mixer.window_size = window_size
    except ValueError:
        for mixer, size in zip(mixers, before):
            mixer._window_size = size
        raise
    return len(mixers)
