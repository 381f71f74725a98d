"""Window geometry, partition/reverse and relative-position tables for windowed attention (Swin and kin).

    index[i, j] = (Δr + M_h - 1) · (2 M_w - 1) + (Δc + M_w - 1),   (Δr, Δc) = (row_i - row_j, col_i - col_j)

``index`` picks, for query i and key j of one window, the row of a learned ((2 M_h - 1)(2 M_w - 1), heads)
bias table (Swin's layout: query minus key, row offset major). A window smaller than the table's M_h × M_w
(a grid smaller than the window) reads the central sub-table through the same formula.

Shifted windows (SW-MSA) are taken on the grid padded at the bottom/right to multiples of the window and then
rolled by (-s_h, -s_w): window k of the rolled grid holds the original rows kM + s ... kM + s + M - 1, except
the last one, which also holds the s rows that wrapped around from the top. Those wrapped tokens are not
neighbours of the rest of their window, so ``shifted_window_mask`` forbids attention between the two parts,
and between any query and a padding key. The result is the non-cyclic partition of the real grid into
windows offset by s: tokens i, j attend iff floor((r_i - s_h) / M_h) and floor((c_i - s_w) / M_w) agree.

Swin-V2's continuous position bias replaces the table by an MLP of log-spaced offsets, one row per offset in
the same order as the table (``log_relative_coords``):

    φ(Δ) = sign(Δ) · log2(1 + 8 |Δ| / (M₀ - 1)) / log2(8),   row (Δr + m_h - 1)(2 m_w - 1) + (Δc + m_w - 1)

for a window m_h × m_w, normalised by a fixed M₀ (the window the model was built / trained with) so that an
offset gets the same coordinates whatever the current window.

Index, coordinates and mask are pure functions of the geometry, cached per (grid, window, shift, device), so
a forward pass never rebuilds them. Papers: Liu et al., "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows", ICCV 2021; Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution",
CVPR 2022.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .cache import grid_cache


class WindowGeometry(NamedTuple):
    window: tuple[int, int]  # effective window (rows, cols), clamped to the grid
    shift: tuple[int, int]  # cyclic shift (rows, cols) applied before partitioning; 0 = W-MSA
    padded: tuple[int, int]  # grid size after bottom/right padding to multiples of the window


def window_geometry(hw: tuple[int, int], window_size: int, shifted: bool) -> WindowGeometry:
    """Effective window, shift and padded size of an H×W grid.

    A side shorter than ``window_size`` gets a window spanning the whole side (so windows may be rectangular),
    and is never shifted: one window covering a side has no neighbour to exchange with, and a shift would only
    cut it in two (Swin likewise drops the shift when the window covers the grid). Shift = window // 2.
    """
    if window_size < 1:
        raise ValueError(f"window_size must be a positive integer, got {window_size}")
    h, w = hw
    window = (min(window_size, h), min(window_size, w))
    shift = tuple(m // 2 if shifted and side > m else 0 for side, m in zip(hw, window))
    padded = tuple(math.ceil(side / m) * m for side, m in zip(hw, window))
    return WindowGeometry(window, shift, padded)


@grid_cache(64)
def relative_position_index(window: tuple[int, int], table: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(L, L) long tensor, L = window_h · window_w: the bias-table row of each (query, key) pair of a window,
    for a table built for ``table`` = (M_h, M_w) >= ``window``. Tokens are row-major inside the window."""
    if window[0] > table[0] or window[1] > table[1]:
        raise ValueError(f"window {window} is larger than the relative-position table's window {table}")
    rows = torch.arange(window[0], device=device).repeat_interleave(window[1])
    cols = torch.arange(window[1], device=device).repeat(window[0])
    d_row = rows[:, None] - rows[None, :]
    d_col = cols[:, None] - cols[None, :]
    return (d_row + table[0] - 1) * (2 * table[1] - 1) + (d_col + table[1] - 1)


@grid_cache(64)
def log_relative_coords(window: tuple[int, int], normaliser: tuple[int, int], device: torch.device,
                        dtype: torch.dtype) -> torch.Tensor:
    """((2 window_h - 1)(2 window_w - 1), 2) log-spaced (φ(Δr), φ(Δc)) of every offset of a window, in the
    row order of ``relative_position_index(window, window)``; axis a is scaled by 8 / (normaliser_a - 1)
    (by 8 when normaliser_a = 1, where Swin-V2 would divide by zero). Any window size works."""
    axes = []
    for side, norm in zip(window, normaliser):
        delta = torch.arange(-(side - 1), side, dtype=torch.float64) * (8.0 / max(norm - 1, 1))
        axes.append(torch.sign(delta) * torch.log2(delta.abs() + 1.0) / 3.0)  # log2(8) = 3
    d_row, d_col = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([d_row, d_col], dim=-1).reshape(-1, 2).to(device=device, dtype=dtype)


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) -> (B, nW, window_h · window_w, C); windows in row-major order, H and W multiples of the
    window, tokens row-major inside each window."""
    b, h, w, c = x.shape
    wh, ww = window
    if h % wh or w % ww:
        raise ValueError(f"grid {h}x{w} is not a multiple of the window {wh}x{ww}: pad it first")
    x = x.view(b, h // wh, wh, w // ww, ww, c).transpose(2, 3)
    return x.reshape(b, (h // wh) * (w // ww), wh * ww, c)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``window_partition``: (B, nW, window_h · window_w, C) -> (B, H, W, C)."""
    b, _, _, c = windows.shape
    (wh, ww), (h, w) = window, hw
    x = windows.view(b, h // wh, w // ww, wh, ww, c).transpose(2, 3)
    return x.reshape(b, h, w, c)


def _axis_groups(side: int, window: int, shift: int, padded: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each position p of one rolled, padded axis: a label that differs between windows and between the
    wrapped-around tail (p >= padded - shift) and the rest of the last window; and whether p is a real token."""
    position = torch.arange(padded)
    wrapped = (position >= padded - shift).long()
    source = (position + shift) % padded  # original index of what the roll brought to p
    return 2 * (position // window) + wrapped, source < side


@grid_cache(64)
def shifted_window_mask(hw: tuple[int, int], window: tuple[int, int], shift: tuple[int, int],
                        device: torch.device) -> torch.Tensor:
    """Additive float32 mask (nW, L, L) of 0 / -inf for the windows of the padded grid rolled by -shift.

    Query i may see key j iff both lie in the same part of the same window (see the module docstring) and j is
    a real token; a padding query also sees itself, so no row is all -inf (its output is cropped anyway).
    """
    h, w = hw
    padded = (math.ceil(h / window[0]) * window[0], math.ceil(w / window[1]) * window[1])
    row_group, row_real = _axis_groups(h, window[0], shift[0], padded[0])
    col_group, col_real = _axis_groups(w, window[1], shift[1], padded[1])
    group = row_group[:, None] * (2 * padded[1]) + col_group[None, :]  # unique per (row part, col part)
    real = row_real[:, None] & col_real[None, :]
    group = window_partition(group[None, :, :, None], window)[0, :, :, 0]  # (nW, L)
    real = window_partition(real[None, :, :, None], window)[0, :, :, 0]
    allowed = (group[:, :, None] == group[:, None, :]) & real[:, None, :]
    allowed |= torch.eye(allowed.shape[-1], dtype=torch.bool)
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
    return mask.to(device)
