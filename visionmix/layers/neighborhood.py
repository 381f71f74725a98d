"""Neighbourhood attention (NAT / DiNAT, NATTEN's border rule) in pure PyTorch, by gathered key indices.

    NA(q, k, v)_i = sum_{j in nb(i)} softmax_j(q_i · k_j · scale) v_j,   |nb(i)| = k_h · k_w for every query i

Per grid axis of length n, with kernel k and dilation d, a query at index i belongs to the dilation group
g = i mod d (the indices ≡ i mod d, n_g = ceil((n - g) / d) of them) and sees the k group members

    start + d·t,  t = 0 .. k-1,    start = g + d · clamp(i // d - k // 2, 0, n_g - k)

i.e. the window centred on i, shifted inward at the borders so that it never leaves the grid (NATTEN's
``get_window_start``, also for dilated windows). The 2-D neighbourhood is the product of the row and column
windows. NATTEN requires k · d <= n; here an axis that is too short is clamped instead: its kernel becomes
min(k, n) and its dilation max(1, min(d, n // kernel)), so a side shorter than k is attended whole and the
window may be rectangular; every query still sees exactly k_h · k_w keys.

Memory: the (B, heads, N, K) attention weights, K = k_h · k_w, plus the keys and values gathered for one chunk
of queries at a time, (B, heads, C, K, d) with C·K·d·B·heads around 2^22 elements. Autograd would keep every
chunk's gathered keys and values for the backward pass, O(N K d) (4 GB for SSViT's two 7×7 passes at 128²,
width 256); :class:`_NeighborhoodAttention` saves only q, k, v and the weights and gathers again, chunk by chunk,
in its backward: O(N K + N d). The index table (N, K) is cached per (H, W, kernel, dilation, device).
Paper: Hassani et al., "Neighborhood Attention Transformer", CVPR 2023; Hassani & Shi, "Dilated
Neighborhood Attention Transformer", 2022.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .cache import grid_cache

GATHER_ELEMENTS = 1 << 22  # elements of one chunk's gathered keys (or values): 16 MB in float32


def axis_window(length: int, kernel_size: int, dilation: int) -> tuple[int, int]:
    """(kernel, dilation) actually used along an axis of ``length``: clamped so that kernel · dilation <= length."""
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"neighbourhood kernel_size and dilation must be positive, got {kernel_size}, {dilation}")
    kernel = min(kernel_size, length)
    return kernel, max(1, min(dilation, length // kernel))


def axis_neighbors(length: int, kernel_size: int, dilation: int) -> torch.Tensor:
    """(length, kernel) long tensor: the indices each position of one axis attends to, in increasing order."""
    kernel, dilation = axis_window(length, kernel_size, dilation)
    i = torch.arange(length)
    group = i % dilation
    group_len = (length - 1 - group) // dilation + 1
    offset = (i // dilation - kernel // 2).clamp(min=0)
    offset = torch.minimum(offset, group_len - kernel)  # >= 0: kernel · dilation <= length
    start = group + dilation * offset
    return start[:, None] + dilation * torch.arange(kernel)


@grid_cache(64)
def neighborhood_index(h: int, w: int, kernel_size: int, dilation: int, device: torch.device) -> torch.Tensor:
    """(H*W, k_h*k_w) long tensor: the row-major key indices of every row-major query, built on the CPU (so
    that it works on the meta device too) and moved to ``device``."""
    rows = axis_neighbors(h, kernel_size, dilation)  # (H, k_h)
    cols = axis_neighbors(w, kernel_size, dilation)  # (W, k_w)
    index = rows[:, None, :, None] * w + cols[None, :, None, :]  # (H, W, k_h, k_w)
    return index.reshape(h * w, -1).to(device)


def query_chunks(n: int, elements_per_query: int) -> list[slice]:
    """Consecutive query slices whose gathered keys hold about GATHER_ELEMENTS elements each."""
    size = max(1, GATHER_ELEMENTS // max(1, elements_per_query))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def gathered(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) rows picked by ``index`` (C, K) -> (B, heads, C, K, d)."""
    return x.index_select(2, index.reshape(-1)).view(*x.shape[:2], *index.shape, x.shape[-1])


class _NeighborhoodAttention(torch.autograd.Function):
    """Chunked forward; the backward gathers again instead of keeping every chunk's keys and values.

    With A = softmax(L), L = scale · q kᵀ over each query's K keys and o = A v:
    dA = g vᵀ, dL = A ⊙ (dA - Σ_k A dA), dq = scale · dL k, and dk, dv scatter-add scale · dLᵀ q and Aᵀ g
    back to the key rows (a key is in up to K windows)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
                scale: float) -> torch.Tensor:
        b, heads, n, d = q.shape
        weights = q.new_empty(b, heads, n, index.shape[1])
        out = q.new_empty(b, heads, n, v.shape[-1])
        for rows in query_chunks(n, b * heads * index.shape[1] * max(d, v.shape[-1])):
            logits = torch.einsum("bhnd,bhnkd->bhnk", q[:, :, rows] * scale, gathered(k, index[rows]))
            weights[:, :, rows] = torch.softmax(logits, dim=-1)
            out[:, :, rows] = torch.einsum("bhnk,bhnkd->bhnd", weights[:, :, rows], gathered(v, index[rows]))
        ctx.save_for_backward(q, k, v, index, weights)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, index, weights = ctx.saved_tensors
        b, heads, n, d = q.shape
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for rows in query_chunks(n, b * heads * index.shape[1] * max(d, v.shape[-1])):
            flat, attn, grad = index[rows].reshape(-1), weights[:, :, rows], grad_out[:, :, rows]
            d_attn = torch.einsum("bhnd,bhnkd->bhnk", grad, gathered(v, index[rows]))
            d_logits = attn * (d_attn - (attn * d_attn).sum(-1, keepdim=True)) * ctx.scale
            dq[:, :, rows] = torch.einsum("bhnk,bhnkd->bhnd", d_logits, gathered(k, index[rows]))
            dk.index_add_(2, flat, torch.einsum("bhnk,bhnd->bhnkd", d_logits, q[:, :, rows]).flatten(2, 3))
            dv.index_add_(2, flat, torch.einsum("bhnk,bhnd->bhnkd", attn, grad).flatten(2, 3))
        return dq, dk, dv, None, None


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
                           scale: float | None = None) -> torch.Tensor:
    """Softmax attention of each query over its gathered keys: q, k, v (B, heads, N, d), index (N, K) ->
    (B, heads, N, d). The softmax runs in the inputs' dtype: call it with float32 (or float64) tensors."""
    n = k.shape[2]
    if index.shape[0] != n:
        raise ValueError(f"neighbourhood index covers {index.shape[0]} queries, the keys {n}")
    return _NeighborhoodAttention.apply(q, k, v, index, k.shape[-1] ** -0.5 if scale is None else scale)
