"""2-D rotary position embedding (RoPE) for tokens on an H×W grid, in RALA/RAVLT's layout.

Each head's channels are taken in interleaved pairs (x_2m, x_2m+1) and rotated by an angle φ_m(n):

    [x'_2m, x'_2m+1] = [x_2m cos φ - x_2m+1 sin φ,  x_2m+1 cos φ + x_2m sin φ],   φ = φ_m(n)
    φ_m(n) = row(n) · θ_m            for pairs m < d/4        (first half of the head: the row index)
    φ_m(n) = col(n) · θ_(m - d/4)    for pairs d/4 <= m < d/2 (second half: the column index)
    θ_j = base^(-j / (d/4 - 1)),  j = 0 .. d/4 - 1   (exponents linspace(0, 1), as RMT/RALA; base 10000)

with n a row-major token index (row = n // W, col = n % W). A head width d that is even but not a multiple
of 4 rotates its first 4⌊d/4⌋ channels this way and leaves the last pair as is (RALA requires 4 | d).
The rotation is orthogonal, so ‖x'‖ = ‖x‖, and <q'_n, k'_m> depends on (row(n) - row(m), col(n) - col(m))
only: attention scores see relative 2-D offsets.

Shapes: x (..., H*W, d) -> same. The (cos, sin) tables are constants, built once per
(H, W, d, base, device, dtype) and cached. Paper: Fan et al., "Breaking the Low-Rank Dilemma of Linear
Attention" (RALA/RAVLT), CVPR 2025; Su et al., "RoFormer", 2021 (1-D RoPE).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .cache import grid_cache


def check_rope_head_dim(head_dim: int, owner: str = "2-D RoPE") -> None:
    """Raise unless ``head_dim`` is even and at least 4 (one rotated pair per axis)."""
    if head_dim % 2 or head_dim < 4:
        raise ValueError(f"{owner} rotates channel pairs, half of them by the row and half by the column index, "
                         f"so the head width must be even and >= 4, got {head_dim}")


@grid_cache(64)
def rope_2d_tables(h: int, w: int, head_dim: int, device: torch.device, dtype: torch.dtype,
                   base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (H*W, head_dim // 2): the rotation angle of every channel pair at every token."""
    check_rope_head_dim(head_dim)
    per_axis = head_dim // 4
    theta = base ** -torch.linspace(0, 1, per_axis, dtype=torch.float64)
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float64).repeat(h)
    angle = torch.zeros(h * w, head_dim // 2, dtype=torch.float64)  # a leftover pair keeps angle 0
    angle[:, :per_axis] = rows[:, None] * theta
    angle[:, per_axis:2 * per_axis] = cols[:, None] * theta
    return angle.cos().to(device, dtype), angle.sin().to(device, dtype)


def apply_rope_2d(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x`` (..., N, d) by the (N, d/2) angle tables."""
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = (torch.addcmul(even * cos, odd, sin, value=-1), torch.addcmul(odd * cos, even, sin))
    return torch.stack(rotated, dim=-1).flatten(-2)


class RoPE2d(nn.Module):
    """2-D RoPE as a parameter-free module: ``rope(x, hw)`` with x (..., H*W, head_dim)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        check_rope_head_dim(head_dim)
        self.head_dim, self.base = head_dim, float(base)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}"

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        h, w = hw
        if x.shape[-2] != h * w or x.shape[-1] != self.head_dim:
            raise ValueError(f"2-D RoPE expects (..., H*W = {h * w}, head_dim = {self.head_dim}), got {tuple(x.shape)}")
        cos, sin = rope_2d_tables(h, w, self.head_dim, x.device, x.dtype, self.base)
        return apply_rope_2d(x, cos, sin)


def rotated_heads(qkv: torch.Tensor, rope: RoPE2d, hw: tuple[int, int], num_heads: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3C) q|k|v projections -> RoPE'd q, k and v, each (B, heads, N, d) in at least float32.

    q and k share one rotation call as a (2, B, heads, N, d) tensor. Call with autocast off."""
    q, k, v = qkv.chunk(3, dim=-1)
    compute = torch.promote_types(v.dtype, torch.float32)
    qk = rearrange(torch.cat([q, k], dim=-1).to(compute), "b n (two h d) -> two b h n d", two=2, h=num_heads)
    q, k = rope(qk, hw)
    return q, k, rearrange(v.to(compute), "b n (h d) -> b h n d", h=num_heads)
