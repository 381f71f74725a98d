"""Softmax self-attention (ViT / DiT / U-ViT).

    Attention(X) = W_o · concat_h softmax(Q_h K_h^T / sqrt(d)) V_h,   [Q, K, V] = X W_qkv (+ b)

Shapes: x (B, N, C) -> (B, N, C), ``num_heads`` heads of width d = C / num_heads. Global, so it accepts
extra non-spatial tokens (U-ViT's time/label tokens) in front of the H*W grid. Runs through
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where available; their softmax
accumulates in fp32). Optional qk-norm: LayerNorm over each head's q and k (Dehghani et al. 2023).

Paper: Vaswani et al., "Attention Is All You Need", 2017; Peebles & Xie, "Scalable Diffusion Models
with Transformers" (DiT), 2023.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer, default_scheme, scaffold_walk
from ..registry import MIXERS


@MIXERS.register_module(name="attention")
class Attention(TokenMixer):
    layout = "tokens"
    accepts_extra_tokens = True
    init_from_scaffold = True  # DiT's xavier, U-ViT's trunc-normal: the scaffold decides

    def __init__(self, dim: int, num_heads: int = 8, *, qkv_bias: bool = True, qk_norm: bool = False,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def init_weights(self, scheme: Scheme | None = None) -> None:
        """The scaffold's scheme (DiT: xavier; U-ViT: trunc-normal 0.02): the papers give attention none of its own."""
        scaffold_walk(self, scheme or default_scheme)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(rearrange(x, "b h n d -> b n (h d)")))
