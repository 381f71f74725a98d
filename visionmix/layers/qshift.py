"""Quad-directional token shift (Vision-RWKV's Q-shift) and the pieces of RWKV's layer-dependent init."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .cache import grid_cache


@grid_cache(64)
def _source_index(h: int, w: int, c: int, g: int, s: int, device: torch.device) -> torch.Tensor:
    """For every (token, channel) of the output, its flat position in the input (B, H*W*C), or
    H*W*C (one zero appended past the end) where the neighbour lies outside the grid."""
    row = torch.arange(h, device=device).view(h, 1, 1)
    col = torch.arange(w, device=device).view(1, w, 1)
    channel = torch.arange(c, device=device).view(1, 1, c)
    group = torch.where(channel < 4 * g, channel // max(g, 1), 4)  # 4: channels kept in place
    # (row, col) offset of the neighbour each group reads: left, right, above, below, itself
    d_row = torch.tensor([0, 0, -s, s, 0], device=device)[group]
    d_col = torch.tensor([-s, s, 0, 0, 0], device=device)[group]
    src_row, src_col = row + d_row, col + d_col
    inside = (src_row >= 0) & (src_row < h) & (src_col >= 0) & (src_col < w)
    flat = (src_row * w + src_col) * c + channel
    return torch.where(inside, flat, h * w * c).flatten()


def q_shift(x: torch.Tensor, hw: tuple[int, int], shift: int = 1, gamma: float = 0.25) -> torch.Tensor:
    """Give each token its neighbours' channels: (B, H*W, C) -> (B, H*W, C).

    Channel quarter 0 comes from ``shift`` pixels to the left, quarter 1 from the right, 2 from above and
    3 from below (``gamma * C`` channels each); out-of-grid neighbours are zeros; remaining channels
    (when gamma < 1/4) are kept.
    """
    if gamma > 0.25:
        raise ValueError(f"q_shift moves four channel groups, so gamma must be <= 1/4, got {gamma}")
    b, length, c = x.shape
    if length != hw[0] * hw[1]:
        raise ValueError(f"q_shift needs H*W = {hw[0]}*{hw[1]} = {hw[0] * hw[1]} tokens, got {length}")
    # One gather through a cached index table: a quarter of the cost (forward + backward) of padding,
    # slicing and concatenating four displaced windows, which matters at the small sizes of the quickstart.
    index = _source_index(hw[0], hw[1], c, int(c * gamma), shift, x.device)
    padded = F.pad(x.reshape(b, length * c), (0, 1))
    return padded.index_select(1, index).view(b, length, c)


def rwkv_mix_ratios(layer_id: int, num_layers: int) -> tuple[float, float]:
    """RWKV's depth ratios: (layer_id / (L - 1), 1 - layer_id / L) — 0 -> 1 and 1 -> ~0 over depth."""
    return layer_id / max(num_layers - 1, 1), 1.0 - layer_id / num_layers


def channel_ramp(dim: int) -> torch.Tensor:
    """(1, 1, dim) tensor with entries i / dim: the base of RWKV's "fancy" token-mix init."""
    return (torch.arange(dim, dtype=torch.float32) / dim).view(1, 1, dim)


def shift_lerp(x: torch.Tensor, shifted: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """RWKV's learned token-shift interpolation ``x * mix + shifted * (1 - mix)`` (dtype-promoting)."""
    return shifted + (x - shifted) * mix
