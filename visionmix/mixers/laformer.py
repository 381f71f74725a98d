"""LAformer's token mixer: rank-enhanced linear attention (RELA) in parallel with channel attention, registered
as ``laformer``.

    out = RELA(X) + CA(X)
    RELA(X) = W_o (concat_h φ(Q_h) S_h / (φ(Q_h) z_h + ε) + DWC_k(V)),   S_h = mean_j φ(k_j) v_jᵀ,  z_h = mean_j φ(k_j)
    CA(X)   = W_c (X ⊙ σ(W_2 ReLU(W_1 x̄ + b_1) + b_2)),                 x̄ = mean over the H*W tokens of X  (SE)

RELA is ``visionmix.mixers.linear_attention.LinearAttention(feature_map, rank_enhance=k)``, used as is (one
qkv projection, φ = elu + 1 by default, the depthwise k×k conv of V on the grid that lifts the rank of
φ(Q)φ(K)ᵀ, W_o): O(N d²) per head, never an N×N map. CA is a squeeze-and-excitation gate over the token grid
(W_1: C -> C / ``channel_reduction``, W_2 back to C) followed by its own projection W_c; the two branches are
summed, as the paper combines its global (linear attention) and channel paths.

Which channel attention, and why: the paper's text beyond its abstract and its code were not findable here. The
abstract integrates linear and channel attention and stresses that LAformer "eliminates hardware-inefficient
operations such as softmax", which rules out a transposed (XCA/Restormer-style, d×d softmax) channel attention;
an SE gate (global average pool, bottleneck MLP, sigmoid) is the softmax-free channel attention of restoration
networks (RCAN, HAT), so that is what this is. Also ours: k = 3 (``rank_enhance``), φ = elu + 1, the reduction
ratio 4, the extra W_c (so the branch is a learned mix of channels, not a re-weighted copy of the input), and the
plain sum. Init: trunc-normal(.02) Linears with zero biases (so σ starts at 0.5 for every channel), default conv
init for DWC, as ``linear_attention``.

Shapes: x (B, H*W, C) -> (B, H*W, C), ``num_heads`` heads of width C / heads. Needs exactly the H*W grid tokens
(DWC and the pool are grid operations). Precision: RELA's features and denominator run in float32 (float64 for
float64 inputs) also under autocast; the pool, the gate MLP and the sigmoid do too; W_c and W_o run in the
autocast dtype.

Paper: Ai et al., "Breaking Complexity Barriers: High-Resolution Image Restoration with Rank Enhanced Linear
Attention" (LAformer), arXiv:2505.16157, 2025; Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import Grid, Scheme, TokenMixer
from ..layers.init import vit_init_
from ..registry import MIXERS
from .linear_attention import FEATURE_MAPS, LinearAttention


@MIXERS.register_module(name="laformer")
class LAformerAttention(TokenMixer):
    """Options: ``feature_map`` (RELA's φ: "elu1", "relu", "focused"), ``rank_enhance`` (odd depthwise kernel
    of the rank conv), ``channel_reduction`` (SE bottleneck ratio), ``qkv_bias``, ``eps`` (denominator floor)."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its rank conv and channel pool run on the grid"

    def __init__(self, dim: int, num_heads: int = 8, *, feature_map: str = "elu1", rank_enhance: int = 3,
                 channel_reduction: int = 4, qkv_bias: bool = True, eps: float = 1e-6, layer_id: int = 0,
                 num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"laformer width {dim} is not divisible by num_heads={num_heads}")
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"unknown laformer feature_map {feature_map!r}; known: {', '.join(FEATURE_MAPS)}")
        if not isinstance(rank_enhance, int) or rank_enhance < 1 or rank_enhance % 2 == 0:
            raise ValueError(f"laformer rank_enhance is RELA's depthwise conv kernel size, an odd positive "
                             f"integer, got {rank_enhance!r}")
        if not isinstance(channel_reduction, int) or not 1 <= channel_reduction <= dim:
            raise ValueError(f"laformer channel_reduction must be an integer in 1..{dim} (the SE bottleneck is "
                             f"width {dim} / channel_reduction), got {channel_reduction!r}")
        self.num_heads, self.channel_reduction = num_heads, channel_reduction
        self.rela = LinearAttention(dim, num_heads, feature_map=feature_map, rank_enhance=rank_enhance,
                                    qkv_bias=qkv_bias, eps=eps, layer_id=layer_id, num_layers=num_layers)
        self.squeeze = nn.Linear(dim, dim // channel_reduction)
        self.excite = nn.Linear(dim // channel_reduction, dim)
        self.channel_proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        self.rela.init_weights()
        for part in (self.squeeze, self.excite, self.channel_proj):
            vit_init_(part)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, channel_reduction={self.channel_reduction}"

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """σ(W_2 ReLU(W_1 mean_n x)): (B, N, C) -> (B, 1, C) gates, in at least float32 (also under autocast)."""
        compute = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            pooled = x.to(compute).mean(dim=1, keepdim=True)
            hidden = F.relu(F.linear(pooled, self.squeeze.weight.to(compute), self.squeeze.bias.to(compute)))
            return torch.sigmoid(F.linear(hidden, self.excite.weight.to(compute), self.excite.bias.to(compute)))

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        channel = self.channel_proj(x * self.channel_gate(x).to(x.dtype))
        return self.rela(x, grid) + channel
