"""Rank-augmented linear attention (RAVLT's RALA), registered as ``rala``.

    [Q, K, V, G] = X W_qkvg (+ b);   q = elu(Q) + 1,  k = elu(K) + 1                       per head, width d
    α_j = N · softmax_j(q̄ · k_j / √d),   q̄ = mean_i q_i,   k̂_j = α_j k_j       (query-aware key weights)
    o_i = R_i q_i^T (mean_j R_j k̂_j v_j^T) / (q_i^T mean_j k̂_j + ε)           (R_n: 2-D RoPE at token n)
    out = W_o ((concat_h o + LePE(V)) ⊙ G)

RoPE rotates q and k̂ in the numerator only: the denominator keeps the un-rotated, positive features, so it
stays a positive normaliser. LePE is a depthwise 5×5 conv of V on the grid (``lepe_kernel_size``, 0 = off).
The gate G is a plain linear projection of the input: the official block is ``GateLinearAttentionNoSilu``
(no activation on G); q, k, v and G come from one projection, as the official 1×1 ``qkvo`` conv.

Shapes: x (B, H*W, C) -> (B, H*W, C), row-major tokens, ``num_heads`` heads of width d = C / heads (even
and >= 4, for the 2-D RoPE of ``visionmix.layers.rope``). RoPE and LePE need the grid, so extra
condition tokens are rejected (use conditioning='adaln_zero' or 'adaln'). Cost O(N d²) per head; never
an N×N matrix. Precision: features, key weights (logits and softmax), RoPE and the denominator run in
float32 (float64 for float64 inputs), also under autocast; the two d-wide products run in the autocast dtype.
Init: trunc-normal(.02) Linears with zero biases and, as the official model init reaches every conv,
trunc-normal(.02) for the LePE kernel with a zero bias. The official block's extra 3×3 conv position
encoding (``x + pos(x)`` before the norm) belongs to the block, not the mixer, and is not part of this one.

Paper: Fan et al., "Breaking the Low-Rank Dilemma of Linear Attention", CVPR 2025 (code: qhfan/RALA).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.init import vit_init_
from ..layers.lepe import optional_lepe
from ..layers.rope import RoPE2d, check_rope_head_dim
from ..registry import MIXERS
from .linear_attention import normalized_linear_attention


@MIXERS.register_module(name="rala")
class RankAugmentedLinearAttention(TokenMixer):
    """Options: ``lepe_kernel_size`` (odd, 0 = off), ``qkv_bias`` (bias of the q/k/v/gate projection),
    ``eps`` (denominator floor), ``rope_base`` (RoPE frequency base)."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its 2-D RoPE and LePE read grid positions"

    def __init__(self, dim: int, num_heads: int = 8, *, lepe_kernel_size: int = 5, qkv_bias: bool = True,
                 eps: float = 1e-6, rope_base: float = 10000.0, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"rala width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        check_rope_head_dim(self.head_dim, owner=f"rala's 2-D RoPE (head width {dim} / {num_heads})")
        if eps <= 0:
            raise ValueError(f"rala eps must be positive, got {eps}")
        self.eps, self.scale = float(eps), self.head_dim ** -0.5
        self.qkv_gate = nn.Linear(dim, 4 * dim, bias=qkv_bias)
        self.rope = RoPE2d(self.head_dim, rope_base)
        self.lepe = optional_lepe(dim, lepe_kernel_size, "rala")
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)  # the LePE conv inits itself: trunc-normal(.02), as the official init

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, eps={self.eps:g}"

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        hw = grid.hw
        h, w = hw
        dim = x.shape[-1]
        qk, v, gate = self.qkv_gate(x).split([2 * dim, dim, dim], dim=-1)
        compute = torch.promote_types(v.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            # q and k share every elementwise step (features, RoPE): run them as one (2, B, heads, N, d) tensor
            qk = rearrange(F.elu(qk.to(compute)) + 1.0, "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
            q, k = qk
            logits = torch.einsum("bhd,bhnd->bhn", q.mean(dim=-2), k) * self.scale
            # k̂_j / N = softmax_j · k_j: the weights of the state's mean, with α's factor N cancelled
            weights = torch.softmax(logits, dim=-1).unsqueeze(-1)
            # a rotation is linear, so rotating k before its scalar weight equals rotating k̂
            q_rot, k_rot = self.rope(qk, hw)
            k, k_rot = k * weights, k_rot * weights
        v_heads = rearrange(v, "b n (h d) -> b h n d", h=self.num_heads)
        out = normalized_linear_attention(q_rot, k_rot, v_heads, eps=self.eps, q_den=q, k_den=k)
        out = rearrange(out, "b h n d -> b n (h d)").to(v.dtype)
        if self.lepe is not None:
            out = out + self.lepe(v, hw)
        return self.proj(out * gate)
