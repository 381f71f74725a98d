"""Pure PyTorch implementations of the bidirectional WKV operator.

``bi_wkv_dense`` is the O(T^2) oracle (an explicit softmax over all keys); ``bi_wkv_torch`` is the
fallback used when the native kernels cannot be built: dense inside chunks, with the keys of the
other chunks summarised by log-space states carried from chunk to chunk. Both are differentiable
by autograd and take the arguments of :func:`visionmix.ops.bi_wkv`.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

# Log-weight of padded keys and of states that hold no key: finite so that no gradient is NaN.
_EMPTY = -1e30


def _bias(length: int, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """(L, L, C) logit offsets: -(|t - i| - 1) w off the diagonal, u on it."""
    pos = torch.arange(length, device=w.device)
    dist = (pos[:, None] - pos[None, :]).abs().to(w.dtype)
    eye = torch.eye(length, dtype=torch.bool, device=w.device)
    return torch.where(eye[..., None], u, -(dist - 1)[..., None] * w)


def bi_wkv_dense(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dtype: Optional[torch.dtype] = torch.float64,
) -> torch.Tensor:
    """Dense oracle: softmax over all keys with a (B, T, T, C) logit tensor.

    Computed in ``dtype`` (float64 by default; ``None`` keeps the dtype of ``k``) and returned in
    the dtype of ``k``.
    """
    cdt = k.dtype if dtype is None else dtype
    kd, vd = k.to(cdt), v.to(cdt)
    logits = kd[:, None, :, :] + _bias(k.shape[1], w.to(cdt), u.to(cdt))  # [b, t, i, c]
    p = torch.softmax(logits, dim=2)
    del logits
    return (p * vd[:, None, :, :]).sum(dim=2).to(k.dtype)


def _carry(
    log_w: torch.Tensor, mean: torch.Tensor, decay: torch.Tensor, reverse: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """States entering each chunk from the chunks on one side.

    log_w, mean: (B, n, C) log of the summed weight and weighted mean of v of every chunk,
    measured at the chunk's border on the side the state travels to. decay: L * w, (C,).
    Returns the same for the state that enters each chunk (empty for the first one).
    """
    n = log_w.shape[1]
    order = range(n - 1, -1, -1) if reverse else range(n)
    state_l = torch.full_like(log_w[:, 0], _EMPTY)
    state_m = torch.zeros_like(mean[:, 0])
    out_l: List[torch.Tensor] = [state_l] * n
    out_m: List[torch.Tensor] = [state_m] * n
    for idx in order:
        out_l[idx], out_m[idx] = state_l, state_m
        kept = state_l - decay
        new_l = torch.logaddexp(kept, log_w[:, idx])
        state_m = torch.exp(kept - new_l) * state_m + torch.exp(log_w[:, idx] - new_l) * mean[:, idx]
        state_l = new_l
    return torch.stack(out_l, 1), torch.stack(out_m, 1)


def bi_wkv_torch(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int = 64
) -> torch.Tensor:
    """Chunked O(T * chunk) evaluation, exact to the precision of float32.

    Half-precision inputs are computed in float32. The carried log-scales are float64: they grow
    like |w| T and would otherwise lose absolute precision.
    """
    B, T, C = k.shape
    acc = torch.float64 if k.dtype == torch.float64 else torch.float32
    w, u, k32, v32 = w.to(acc), u.to(acc), k.to(acc), v.to(acc)
    L = max(1, min(chunk, T))
    n = -(-T // L)
    pad = n * L - T
    kc = F.pad(k32, (0, 0, 0, pad), value=_EMPTY).view(B, n, L, C)
    vc = F.pad(v32, (0, 0, 0, pad)).view(B, n, L, C)
    pos = torch.arange(L, device=k.device, dtype=acc)[:, None]

    def summary(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return (torch.logsumexp(logits, dim=2).double(),
                (torch.softmax(logits, dim=2) * vc).sum(dim=2).double())

    # Keys of a chunk seen from just after its end (forward) and just before its start (backward).
    decay = (L * w).double()
    fwd_l, fwd_m = _carry(*summary(kc - (L - 1 - pos) * w), decay, reverse=False)
    bwd_l, bwd_m = _carry(*summary(kc - pos * w), decay, reverse=True)

    # Queries of a chunk: L keys of their own chunk plus the two carried states.
    inner = kc[:, :, None, :, :] + _bias(L, w, u)  # [b, chunk, t, i, c]
    wd = w.double()
    ext_f = fwd_l[:, :, None, :] - pos.double() * wd  # [b, chunk, t, c]
    ext_b = bwd_l[:, :, None, :] - (L - 1 - pos.double()) * wd
    # One normaliser for all terms of a query, exactly representable in acc, so that the in-chunk
    # and carried weights are scaled alike.
    top = torch.maximum(inner.amax(dim=3).double(), torch.maximum(ext_f, ext_b)).to(acc)
    e_in = torch.exp(inner - top[:, :, :, None, :])
    e_f = torch.exp(ext_f - top.double()).to(acc)
    e_b = torch.exp(ext_b - top.double()).to(acc)
    num = (e_in * vc[:, :, None, :, :]).sum(dim=3) + e_f * fwd_m[:, :, None].to(acc)
    num = num + e_b * bwd_m[:, :, None].to(acc)
    den = e_in.sum(dim=3) + e_f + e_b
    y = (num / den).reshape(B, n * L, C)[:, :T]
    return y.to(k.dtype)
