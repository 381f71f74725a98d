"""Manhattan Self-Attention (RMT's MaSA), registered as ``retnet``: softmax attention with a spatial decay prior.

    full:        MaSA(X) = W_o (softmax(Q'K'^T / sqrt(d) + D_h) V + LePE(V))              per head h
    decomposed:  MaSA(X) = W_o (A^col_h (A^row_h V) + LePE(V)),   A^row_h = softmax_row(Q'K'^T / sqrt(d) + D^W_h)
                 (A^row: softmax within each row, D^W = |c_n - c_m| log γ_h; A^col: within each column, |r_n - r_m|)
    D_h[n, m] = (|r_n - r_m| + |c_n - c_m|) log γ_h,   γ_h = 1 - 2^(-initial_value - heads_range · h / num_heads)

Q, K, V are separate biased projections of x; Q' = RoPE(Q), K' = RoPE(K) ("theta shift": RoPE on the row-major
token index, pairs of channels rotated by angles 10000^-linspace(0, 1, d/2)); LePE is a depthwise 5×5 conv of V
on the grid. Decomposed form (RMT's "chunkwise" stages): attention first along each row (decay |Δc| log γ),
then along each column over the row pass's output (decay |Δr| log γ), each with its own softmax, reusing Q', K';
cost O(N (H + W) d) instead of O(N² d). Decay masks: ``visionmix.layers.decay`` (constants, cached).

Shapes: x (B, H*W, C) -> (B, H*W, C), ``num_heads`` heads of width d = C / num_heads (even when RoPE is on).
Needs exactly the H*W grid tokens (no extra condition tokens). Logits, masks and softmax run in float32
(float64 for float64 inputs), also under autocast; the result is cast back to the projections' dtype.
Init: trunc-normal(.02) Linears with zero biases, as RMT's model-level init leaves them (it overrides the
retention layer's own xavier init), and PyTorch's default conv init for LePE.

Paper: Fan et al., "RMT: Retentive Networks Meet Vision Transformers", CVPR 2024.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.cache import grid_cache
from ..layers.decay import axial_decay, manhattan_decay, retention_log_gammas
from ..layers.init import vit_init_
from ..layers.lepe import DepthwiseConvPE
from ..registry import MIXERS


@grid_cache(32)
def theta_shift_tables(length: int, head_dim: int, device: torch.device,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin, cos), each (length, head_dim): RMT's RoPE on token index n, angle_j = 10000^(-j / (d/2 - 1)) per
    channel pair j (both channels of a pair share it)."""
    angle = 10000.0 ** -torch.linspace(0, 1, head_dim // 2, device=device, dtype=torch.float64)
    phase = torch.arange(length, device=device, dtype=torch.float64)[:, None] * angle.repeat_interleave(2)
    return phase.sin().to(dtype), phase.cos().to(dtype)


def theta_shift(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x_2j, x_2j+1) by their angle: x cos + (-x_2j+1, x_2j) sin."""
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((-odd, even), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def attend_along_last_axis(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """Softmax attention within each line of the last grid axis: q, k, v (B, heads, L1, L2, d), decay
    (heads, L2, L2). The L1 lines go into the batch so one sdpa call covers them all."""
    b, heads, lines, length, _ = q.shape

    def fold(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(1, 2).reshape(b * lines, heads, length, t.shape[-1])

    out = F.scaled_dot_product_attention(fold(q), fold(k), fold(v), attn_mask=decay)
    return out.view(b, lines, heads, length, -1).transpose(1, 2)


@MIXERS.register_module(name="retnet")
class ManhattanSelfAttention(TokenMixer):
    """RMT's MaSA. Options: ``decomposed`` (axial form), ``initial_value`` / ``heads_range`` (γ per head; RMT uses
    2 and 4 in its early stages, 6 in the deep ones), ``theta_shift`` (RoPE on q, k), ``lepe_kernel_size``."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its decay is a function of grid position"

    def __init__(self, dim: int, num_heads: int = 8, *, decomposed: bool = False, initial_value: float = 2.0,
                 heads_range: float = 6.0, theta_shift: bool = True, lepe_kernel_size: int = 5,
                 qkv_bias: bool = True, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"retnet width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        if theta_shift and self.head_dim % 2:
            raise ValueError(f"retnet's theta shift (RoPE) rotates channel pairs, so the head width "
                             f"{self.head_dim} (= {dim} / {num_heads}) must be even; or set theta_shift=False")
        self.decomposed, self.use_theta_shift = decomposed, theta_shift
        self.initial_value, self.heads_range = initial_value, heads_range
        self.log_gammas = retention_log_gammas(num_heads, initial_value, heads_range)
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.lepe = DepthwiseConvPE(dim, lepe_kernel_size)
        self.out_proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, decomposed={self.decomposed}, theta_shift={self.use_theta_shift}"

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        hw = grid.hw
        h, w = hw
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        lepe = self.lepe(v, hw)
        # fp32 logits + log-decay and softmax even under autocast: the decay spans tens of nats over a grid
        compute = torch.promote_types(v.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            q, k, values = (rearrange(t.to(compute), "b n (h d) -> b h n d", h=self.num_heads) for t in (q, k, v))
            if self.use_theta_shift:
                sin, cos = theta_shift_tables(h * w, self.head_dim, x.device, compute)
                q, k = theta_shift(q, sin, cos), theta_shift(k, sin, cos)
            if self.decomposed:
                out = self._axial(q, k, values, hw)
            else:
                decay = manhattan_decay(h, w, self.log_gammas, x.device, compute)
                out = F.scaled_dot_product_attention(q, k, values, attn_mask=decay)
        out = rearrange(out, "b h n d -> b n (h d)").to(v.dtype)
        return self.out_proj(out + lepe)

    def _axial(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Row pass then column pass (RMT's order), both on (B, heads, H*W, d) tensors."""
        h, w = hw
        grid = lambda t: t.unflatten(2, (h, w))  # noqa: E731  (B, heads, H, W, d)
        q, k = grid(q), grid(k)
        row_decay = axial_decay(w, self.log_gammas, q.device, q.dtype)
        col_decay = axial_decay(h, self.log_gammas, q.device, q.dtype)
        rows = attend_along_last_axis(q, k, grid(v), row_decay)
        cols = attend_along_last_axis(q.transpose(2, 3), k.transpose(2, 3), rows.transpose(2, 3), col_decay)
        return cols.transpose(2, 3).flatten(2, 3)
