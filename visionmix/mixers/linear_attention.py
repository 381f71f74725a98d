"""Kernelised linear attention (vanilla / FLatten's focused / rank-enhanced), registered as ``linear_attention``.

    o_i = φ(q_i)^T S / (φ(q_i)^T z + ε),   S = mean_j φ(k_j) v_j^T  (d×d),   z = mean_j φ(k_j)     per head
    out = W_o (concat_h o + DWC_k(V)),     [Q, K, V] = X W_qkv (+ b)

This equals softmax attention with exp(q·k) replaced by φ(q)·φ(k) (rows normalised by their sums), but is
computed right-to-left: O(N d²) time and O(d²) state per head, never an N×N matrix.
Feature maps φ (``feature_map``):
- ``"elu1"``: elu(x) + 1 (Katharopoulos et al.);  ``"relu"``: relu(x);
- ``"focused"`` (FLatten): x̂ = (relu(x) + 1e-6) / softplus(s), s a learned per-channel scale shared by q and k
  (zeros at init), then f_p(x̂) = ‖x̂‖ · x̂^p / ‖x̂^p‖ with the elementwise power p = ``focusing_factor``; as in
  the official code the norms run over all C channels of a token, before the heads are split.
``rank_enhance=k`` (k odd, 0 = off): a depthwise k×k conv of V over the H×W grid added to the attention output
before W_o (FLatten/RELA's fix for the low rank of φ(Q)φ(K)^T); leading extra tokens get no such term.

Shapes: x (B, N, C) -> (B, N, C), N = H*W grid tokens (row-major) after any number of leading extra tokens,
which, the mixer being global, take part in S and z like the rest. ``num_heads`` heads of width d = C / heads.
Precision: feature maps and the denominator run in float32 (float64 for float64 inputs), also under autocast;
the two d-wide products run in the autocast dtype; the division is in float32 and the result goes back to
V's dtype. Init: trunc-normal(.02) Linears with zero biases (FLatten's), default conv init.
Deviations from FLatten: no learned absolute position embedding on k (the backbone has its own), and one
per-channel rank conv instead of a k×k kernel shared by all heads. ε goes on the mean-form denominator, as in
FLatten's PVT code (its Swin code adds it to the sum form).

Papers: Katharopoulos et al., "Transformers are RNNs", ICML 2020; Han et al., "FLatten Transformer: Vision
Transformer using Focused Linear Attention", ICCV 2023; Fan et al., "Breaking the Low-Rank Dilemma of Linear
Attention" (RELA/RALA), CVPR 2025.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.init import vit_init_
from ..layers.lepe import DepthwiseConvPE
from ..registry import MIXERS

FEATURE_MAPS = ("elu1", "relu", "focused")


def normalized_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, eps: float,
                                q_den: torch.Tensor | None = None, k_den: torch.Tensor | None = None) -> torch.Tensor:
    """o_i = q_i^T (sum_j k_j v_j^T) / (q̃_i^T sum_j k̃_j + eps) on (B, heads, N, d) tensors -> (B, heads, N, d_v).

    The keys carry their averaging weights (φ(k) / N for the mean form; RALA's softmax-weighted keys), which
    also keeps the d×d state O(1) in half precision however long the sequence. q̃, k̃ (``q_den``, ``k_den``)
    default to q, k; RALA passes its un-rotated features there. The numerator runs in V's (or the autocast)
    dtype; the denominator and the division in at least float32.
    """
    q_den = q if q_den is None else q_den
    k_den = k if k_den is None else k_den
    state = torch.einsum("bhnd,bhne->bhde", k.to(v.dtype), v)
    numerator = torch.einsum("bhnd,bhde->bhne", q.to(v.dtype), state)
    compute = torch.promote_types(v.dtype, torch.float32)
    with torch.autocast(v.device.type, enabled=False):
        key_sum = k_den.to(compute).sum(dim=-2)
        denominator = torch.einsum("bhnd,bhd->bhn", q_den.to(compute), key_sum) + eps
        return numerator.to(compute) / denominator.unsqueeze(-1)


def focused_features(x: torch.Tensor, scale: torch.Tensor, power: float) -> torch.Tensor:
    """FLatten's focused map over the last axis: x̂ = (relu(x) + 1e-6) / scale, ‖x̂‖ · x̂^p / ‖x̂^p‖."""
    x = (F.relu(x) + 1e-6) / scale
    # x̂^p / ‖x̂^p‖ does not change when x̂ is rescaled, so raise x̂ / max(x̂) ∈ (0, 1] instead: x̂^p itself
    # underflows in float32 for small features. The max is detached because the result does not depend on it.
    unit = x / x.amax(dim=-1, keepdim=True).detach()
    powered = unit ** power
    return powered * (x.norm(dim=-1, keepdim=True) / powered.norm(dim=-1, keepdim=True))


@MIXERS.register_module(name="linear_attention")
class LinearAttention(TokenMixer):
    """Options: ``feature_map`` ("elu1", "relu", "focused"), ``focusing_factor`` (focused only), ``rank_enhance``
    (odd depthwise kernel size, 0 = off), ``qkv_bias``, ``eps`` (denominator floor)."""

    layout = "tokens"
    accepts_extra_tokens = True

    def __init__(self, dim: int, num_heads: int = 8, *, feature_map: str = "elu1", focusing_factor: float = 3.0,
                 rank_enhance: int = 0, qkv_bias: bool = True, eps: float = 1e-6, layer_id: int = 0,
                 num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"linear_attention width {dim} is not divisible by num_heads={num_heads}")
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"unknown linear_attention feature_map {feature_map!r}; known: {', '.join(FEATURE_MAPS)}")
        if focusing_factor <= 0:
            raise ValueError(f"linear_attention focusing_factor must be positive, got {focusing_factor}")
        if rank_enhance < 0 or (rank_enhance and rank_enhance % 2 == 0):
            raise ValueError(f"linear_attention rank_enhance is the depthwise conv's kernel size: 0 (off) or an "
                             f"odd positive integer, got {rank_enhance}")
        if eps <= 0:
            raise ValueError(f"linear_attention eps must be positive, got {eps}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.feature_map, self.focusing_factor, self.eps = feature_map, float(focusing_factor), float(eps)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.feature_scale = nn.Parameter(torch.zeros(dim)) if feature_map == "focused" else None
        self.rank_conv = DepthwiseConvPE(dim, rank_enhance) if rank_enhance else None
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)
        if self.feature_scale is not None:
            nn.init.zeros_(self.feature_scale)  # softplus(0) = ln 2, as FLatten

    def extra_repr(self) -> str:
        extra = f", focusing_factor={self.focusing_factor:g}" if self.feature_map == "focused" else ""
        return f"num_heads={self.num_heads}, feature_map={self.feature_map!r}{extra}"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ over the last (channel) axis of (B, N, C) projections, in at least float32."""
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        if self.feature_map == "elu1":
            return F.elu(x) + 1.0
        if self.feature_map == "relu":
            return F.relu(x)
        return focused_features(x, F.softplus(self.feature_scale.to(x.dtype)), self.focusing_factor)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        extra = grid.extra_tokens  # condition tokens in front: global, so they attend and are attended to
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = self.features(q), self.features(k)
        heads = lambda t: rearrange(t, "b n (h d) -> b h n d", h=self.num_heads)  # noqa: E731
        out = normalized_linear_attention(heads(q), heads(k / x.shape[1]), heads(v), eps=self.eps)
        out = rearrange(out, "b h n d -> b n (h d)").to(v.dtype)
        if self.rank_conv is not None:
            rank_term = self.rank_conv(v[:, extra:], grid.hw)
            out = out + rank_term if extra == 0 else torch.cat((out[:, :extra], out[:, extra:] + rank_term), dim=1)
        return self.proj(out)
