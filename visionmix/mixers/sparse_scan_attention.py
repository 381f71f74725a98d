"""Sparse Scan Self-Attention (SSViT's S3A), registered as ``sparse_scan_attention``.

    NA_(k, d)(q, k, V)_i = sum_{j in nb_(k, d)(i)} softmax_j(q'_i · k'_j / sqrt(d_h)) V_j      (per head)
    S3A(X) = W_o (NA_(g, s)(q', k', NA_(l, 1)(q', k', V)) + LePE(V)),   q' = RoPE(Q), k' = RoPE(K)

``nb_(k, d)(i)``: the k×k neighbourhood of token i with dilation d under NATTEN's border rule (the window is
shifted inward, per dilation group, so every query sees exactly k² keys; ``visionmix.layers.neighborhood``).
The paper's "anchors of interest": a local pass gathers an l×l window around every token, then a sparse pass
over those local summaries attends to g×g anchors spaced s apart, so each token reaches across the grid.
Two schedules, with K = ``kernel_size`` and m = min(H, W):

- ``schedule="official"`` (the official code's rule). Even ``layer_id``: l = K, g = toodd(m // K), s = K; odd
  ``layer_id`` ("reverse"): l = toodd(m // K), g = K, s = m // K; toodd(n) = n or n + 1, whichever is odd.
  s shrinks until g · s <= m (at least 1); a pass whose l or g (before toodd) is <= 1 is skipped. Per query
  that is l² + g² keys, N (K² + (m / K)²) in all: the kernel that scans the grid grows with it.
- ``schedule="fixed"`` (default): both passes K×K, the sparse one with dilation s = m // K so its anchors
  still span the grid; odd layers swap the roles by running the sparse pass first. Exactly 2 K² keys per
  query on every grid (one K×K pass when s = 1), so cost is O(N K²): linear at any resolution, as the
  benchmark's growth target asks. It is the official rule wherever that already uses K×K anchors (m // K
  = 7 on even layers; the sparse pass of every odd layer).

An explicit ``dilation`` d instead runs one K×K pass with that dilation (DiNAT-style; d = 1 is NAT). A side
too short for a window is clamped (kernel min(k, side), dilation reduced; see the layers module): small
grids get full attention along that side, never an error.

Q, K, V come from one biased projection (the official 1×1 ``qkv`` conv); 2-D RoPE on q, k in RMT/SSViT's
layout (``visionmix.layers.rope``, = the official ``theta_shift``); LePE is a depthwise 5×5 conv of V
(``lepe_kernel_size``, 0 = off). Logits, softmax and both passes run in float32 (float64 for float64 inputs),
also under autocast. Memory O(N K² d) (gathered keys and values), never N×N. Init: trunc-normal(.02) Linears
with zero biases and LePE kernel, zero LePE bias, as the official model init (it overrides the module's
xavier init). NATTEN is not used: indices are gathered in PyTorch, cached per (H, W, kernel, dilation, device).

Shapes: x (B, H*W, C) -> (B, H*W, C), heads of width C / num_heads (even, >= 4, for the 2-D RoPE).
Paper: Fan et al., "Vision Transformer with Sparse Scan Prior" (SSViT), 2024 (code: qhfan/SSViT).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.init import vit_init_
from ..layers.lepe import optional_lepe
from ..layers.neighborhood import neighborhood_attention, neighborhood_index
from ..layers.rope import RoPE2d, check_rope_head_dim, rotated_heads
from ..registry import MIXERS


def toodd(n: int) -> int:
    return n if n % 2 else n + 1


def scan_passes(hw: tuple[int, int], kernel_size: int, reverse: bool) -> list[tuple[int, int]]:
    """The official S3A schedule on an H×W grid: [(kernel, dilation)] of the local pass, then the sparse one."""
    m = min(hw)
    local, grid = (m // kernel_size, kernel_size) if reverse else (kernel_size, m // kernel_size)
    passes = []
    if local > 1:
        passes.append((toodd(local), 1))
    if grid > 1:
        stride = max(local, 1)
        while stride > 1 and toodd(grid) * stride > m:
            stride -= 1
        passes.append((toodd(grid), stride))
    return passes


def fixed_scan_passes(hw: tuple[int, int], kernel_size: int, reverse: bool) -> list[tuple[int, int]]:
    """K×K local and K×K anchors spaced m // K apart (sparse first when ``reverse``): 2 K² keys per query."""
    stride = min(hw) // kernel_size
    if stride <= 1:
        return [(kernel_size, 1)]
    passes = [(kernel_size, 1), (kernel_size, stride)]
    return passes[::-1] if reverse else passes


SCHEDULES = {"fixed": fixed_scan_passes, "official": scan_passes}


@MIXERS.register_module(name="sparse_scan_attention")
class SparseScanAttention(TokenMixer):
    """SSViT's S3A. Options: ``kernel_size`` (odd, >= 3; the official 7), ``dilation`` (None: the paper's
    two-pass scan, alternating with ``layer_id``; an int: one neighbourhood pass with that dilation),
    ``schedule`` of the scan (``"fixed"``: K×K passes, O(N K²); ``"official"``: the official kernel sizes),
    ``lepe_kernel_size`` (odd, 0 = off), ``qkv_bias``, ``rope_base``."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its neighbourhoods and RoPE read grid positions"

    def __init__(self, dim: int, num_heads: int = 8, *, kernel_size: int = 7, dilation: int | None = None,
                 schedule: str = "fixed",
                 lepe_kernel_size: int = 5, qkv_bias: bool = True, rope_base: float = 10000.0,
                 layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"sparse_scan_attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        check_rope_head_dim(self.head_dim, owner=f"sparse_scan_attention's 2-D RoPE (head width {dim} / {num_heads})")
        if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"sparse_scan_attention kernel_size must be an odd integer >= 3 (a centred "
                             f"neighbourhood), got {kernel_size!r}")
        if dilation is not None and (not isinstance(dilation, int) or dilation < 1):
            raise ValueError(f"sparse_scan_attention dilation must be None (the paper's two-pass scan) or a "
                             f"positive integer, got {dilation!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"sparse_scan_attention schedule {schedule!r} is unknown; choose one of "
                             f"{', '.join(map(repr, SCHEDULES))}")
        self.kernel_size, self.dilation, self.reverse = kernel_size, dilation, layer_id % 2 == 1
        self.schedule = schedule
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rope = RoPE2d(self.head_dim, rope_base)
        self.lepe = optional_lepe(dim, lepe_kernel_size, "sparse_scan_attention")
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)  # the LePE conv inits itself: trunc-normal(.02), as the official init

    def extra_repr(self) -> str:
        mode = f"{self.schedule} scan" + (" (reverse)" if self.reverse else "")
        return (f"num_heads={self.num_heads}, kernel_size={self.kernel_size}, "
                f"dilation={mode if self.dilation is None else self.dilation}")

    def passes(self, hw: tuple[int, int]) -> list[tuple[int, int]]:
        """[(kernel, dilation)] run in order on an H×W grid, each pass attending over the previous one's output."""
        if self.dilation is None:
            return SCHEDULES[self.schedule](hw, self.kernel_size, self.reverse)
        return [(self.kernel_size, self.dilation)]

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        hw = grid.hw
        h, w = hw
        qkv = self.qkv(x)
        v = qkv.chunk(3, dim=-1)[2]  # LePE reads v as tokens, in the projection's dtype
        with torch.autocast(x.device.type, enabled=False):
            q, k, out = rotated_heads(qkv, self.rope, hw, self.num_heads)
            for kernel, dilation in self.passes(hw):
                index = neighborhood_index(h, w, kernel, dilation, x.device)
                out = neighborhood_attention(q, k, out, index, scale=self.head_dim ** -0.5)
        out = rearrange(out, "b h n d -> b n (h d)").to(v.dtype)
        if self.lepe is not None:
            out = out + self.lepe(v, hw)
        return self.proj(out)
