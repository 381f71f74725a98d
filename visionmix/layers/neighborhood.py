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

Memory: the keys and values gathered per query, (B, heads, N, K, d) with K = k_h · k_w, and the (B, heads,
N, K) logits: O(N K d), never N×N. The index table (N, K) is cached per (H, W, kernel, dilation, device).
Paper: Hassani et al., "Neighborhood Attention Transformer", CVPR 2023; Hassani & Shi, "Dilated
Neighborhood Attention Transformer", 2022.
"""
from __future__ import annotations

import torch

from .cache import grid_cache


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


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
                           scale: float | None = None) -> torch.Tensor:
    """Softmax attention of each query over its gathered keys: q, k, v (B, heads, N, d), index (N, K) ->
    (B, heads, N, d). The softmax runs in the inputs' dtype: call it with float32 (or float64) tensors."""
    b, heads, n, d = k.shape
    if index.shape[0] != n:
        raise ValueError(f"neighbourhood index covers {index.shape[0]} queries, the keys {n}")
    scale = d ** -0.5 if scale is None else scale
    flat = index.reshape(-1)
    keys = k.index_select(2, flat).view(b, heads, n, -1, d)  # (B, heads, N, K, d)
    logits = torch.einsum("bhnd,bhnkd->bhnk", q * scale, keys)
    attn = torch.softmax(logits, dim=-1)
    values = v.index_select(2, flat).view(b, heads, n, -1, v.shape[-1])
    return torch.einsum("bhnk,bhnkd->bhnd", attn, values)
