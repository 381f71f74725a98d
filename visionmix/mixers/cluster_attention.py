"""Semantic-equitable clustering attention (SecViT's ``KClusterAttn``), registered as ``cluster_attention``.

    q' = RoPE(Q), k' = RoPE(K);   s_n = cos(k'_n, mean_m k'_m);   π = argsort(s)   (per batch element and head)
    the sorted tokens π(0..N-1) are cut into C consecutive clusters c_1 .. c_C of equal size (±1)
    o_i = sum_{j in c(i)} softmax_j(q'_i · k'_j / sqrt(d)) V_j;     out = W_o (concat_h o + LePE(V))

One pass, no iterations: keys are ranked by their cosine similarity to the head's mean key and every cluster
takes an equal share of the ranking, so clusters are "semantic" (similar keys) and "equitable" (same size,
no empty or giant cluster). The sort only moves tokens: π is an integer index computed without gradient,
and q, k, V reach the loss through a row gather (``index_select``, whose backward adds their gradients back
to the tokens), not through π.

Cluster count: ``num_clusters`` C (the paper's option: SecViT uses 32 / 8 / 2 / 1 over its four stages, i.e.
~98 tokens a cluster at 224 px) or ``cluster_size`` S (C = ceil(N / S) per forward, so the cost O(N S d) stays
linear in N at any resolution). Exactly one may be given; with neither, ``cluster_size=64``. C larger than N is
clamped to N (one token a cluster), so any grid works. When C does not divide N, the first N mod C clusters
hold ceil(N / C) tokens and the others one less (as ``torch.tensor_split``); each short cluster is padded by
one slot whose key is masked out (its query output is discarded), so no token ever attends to padding.
The official code asserts C | N instead. C = 1 is full attention (no sort), as the official code.

Q, K, V come from one biased projection (the official 1×1 ``qkv`` conv); RoPE as the official ``theta_shift``
(``visionmix.layers.rope``); LePE: depthwise 5×5 conv of V (``lepe_kernel_size``, 0 = off). RoPE, scores, sort
and attention run in float32 (float64 for float64 inputs), also under autocast; the assignment is still a
step function of the bf16 projections, so a key at a cluster boundary may switch cluster under autocast.
Init: trunc-normal(.02) Linears and LePE kernel, zero biases, as the official model init (which overrides
the module's xavier init).

Shapes: x (B, H*W, C) -> (B, H*W, C), heads of width C / num_heads (even, >= 4, for the 2-D RoPE).
Paper: Fan et al., "Semantic Equitable Clustering: A Simple and Effective Strategy for Clustering Vision
Tokens" (SecViT), 2024 (code: qhfan/SecViT).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.cache import grid_cache
from ..layers.init import vit_init_
from ..layers.lepe import optional_lepe
from ..layers.rope import RoPE2d, check_rope_head_dim, rotated_heads
from ..registry import MIXERS

DEFAULT_CLUSTER_SIZE = 64


@grid_cache(64)
def cluster_slots(length: int, clusters: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layout of ``length`` sorted tokens in ``clusters`` padded clusters of L = ceil(length / clusters) slots.

    Returns (position (C*L,): the sorted position each slot reads, a pad slot repeating its cluster's first
    token; slot (length,): the slot of each sorted position; valid (C, L) bool: False at pad slots)."""
    size = math.ceil(length / clusters)
    full = length - clusters * (size - 1)  # clusters holding `size` tokens; the others hold size - 1
    j = torch.arange(clusters)[:, None]
    t = torch.arange(size)[None, :]
    start = j * (size - 1) + j.clamp(max=full)
    valid = (t < size - 1) | (j < full)
    position = torch.where(valid, start + t, start).reshape(-1)
    slot = torch.arange(clusters * size).reshape(clusters, size)[valid]  # row-major = sorted order
    return position.to(device), slot.to(device), valid.to(device)


@MIXERS.register_module(name="cluster_attention")
class ClusterAttention(TokenMixer):
    """SecViT's cluster attention. Options: ``cluster_size`` (tokens a cluster; default 64 when neither is
    given) or ``num_clusters`` (the paper's fixed count), ``lepe_kernel_size`` (odd, 0 = off), ``qkv_bias``,
    ``rope_base``."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its RoPE and LePE read grid positions"

    def __init__(self, dim: int, num_heads: int = 8, *, num_clusters: int | None = None,
                 cluster_size: int | None = None, lepe_kernel_size: int = 5, qkv_bias: bool = True,
                 rope_base: float = 10000.0, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"cluster_attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        check_rope_head_dim(self.head_dim, owner=f"cluster_attention's 2-D RoPE (head width {dim} / {num_heads})")
        if num_clusters is not None and cluster_size is not None:
            raise ValueError(f"cluster_attention takes exactly one of num_clusters (a fixed count, the paper's) and "
                             f"cluster_size (tokens a cluster, the count follows the grid), got num_clusters="
                             f"{num_clusters} and cluster_size={cluster_size}")
        for name, value in (("num_clusters", num_clusters), ("cluster_size", cluster_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"cluster_attention {name} must be a positive integer, got {value!r}")
        if num_clusters is None and cluster_size is None:
            cluster_size = DEFAULT_CLUSTER_SIZE
        self.num_clusters, self.cluster_size = num_clusters, cluster_size
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rope = RoPE2d(self.head_dim, rope_base)
        self.lepe = optional_lepe(dim, lepe_kernel_size, "cluster_attention")
        self.proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)  # the LePE conv inits itself: trunc-normal(.02), as the official init

    def extra_repr(self) -> str:
        count = f"num_clusters={self.num_clusters}" if self.num_clusters else f"cluster_size={self.cluster_size}"
        return f"num_heads={self.num_heads}, {count}"

    def clusters_for(self, length: int) -> int:
        """Cluster count on ``length`` tokens: the fixed count or ceil(length / cluster_size), at most length."""
        count = self.num_clusters if self.num_clusters else math.ceil(length / self.cluster_size)
        return max(1, min(count, length))

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        hw = grid.hw
        h, w = hw
        qkv = self.qkv(x)
        v = qkv.chunk(3, dim=-1)[2]  # LePE reads v as tokens, in the projection's dtype
        with torch.autocast(x.device.type, enabled=False):
            q, k, values = rotated_heads(qkv, self.rope, hw, self.num_heads)
            clusters = self.clusters_for(h * w)
            if clusters == 1:
                out = F.scaled_dot_product_attention(q, k, values)
            else:
                out = self._clustered(q, k, values, clusters)
        out = rearrange(out, "b h n d -> b n (h d)").to(v.dtype)
        if self.lepe is not None:
            out = out + self.lepe(v, hw)
        return self.proj(out)

    def _clustered(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, clusters: int) -> torch.Tensor:
        """Attention within equal-size clusters of the cosine ranking; q, k, v (B, heads, N, d)."""
        b, heads, n, d = q.shape
        position, slot, valid = cluster_slots(n, clusters, q.device)
        with torch.no_grad():
            mean = F.normalize(k.mean(dim=-2, keepdim=True), dim=-1)
            score = (F.normalize(k, dim=-1) * mean).sum(-1)  # (B, heads, N)
            order = score.argsort(dim=-1, stable=True)  # sorted position -> token
            rank = torch.empty_like(order).scatter_(-1, order, torch.arange(n, device=q.device).expand_as(order))
            # row ids into the flattened (B·heads·N, ·) tensors: slot -> token, and token -> its slot
            base = torch.arange(b * heads, device=q.device).view(b, heads, 1)
            take = (order[..., position] + base * n).reshape(-1)
            back = (slot[rank] + base * position.numel()).reshape(-1)
        size = position.numel() // clusters
        # one row gather for q, k and v (its backward is one row-wise index_add)
        qkv = torch.cat([q, k, v], dim=-1).reshape(b * heads * n, -1).index_select(0, take)
        qs, ks, vs = qkv.view(b, heads * clusters, size, -1).split([d, d, v.shape[-1]], dim=-1)
        mask = None
        if n % clusters:  # some clusters are one token short: mask their pad slot as a key
            mask = valid[:, None, :].repeat(heads, 1, 1).unsqueeze(0)  # (1, heads*C, 1, L), key padding
        out = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask)
        return out.reshape(b * heads * clusters * size, -1).index_select(0, back).view(b, heads, n, -1)
