"""Quad-directional token shift (Vision-RWKV's Q-shift) and the pieces of RWKV's layer-dependent init."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def q_shift(x: torch.Tensor, hw: tuple[int, int], shift: int = 1, gamma: float = 0.25) -> torch.Tensor:
    """Give each token its neighbours' channels: (B, H*W, C) -> (B, H*W, C).

    Channel quarter 0 comes from ``shift`` pixels to the left, quarter 1 from the right, 2 from above and
    3 from below (``gamma * C`` channels each); out-of-grid neighbours are zeros; remaining channels
    (when gamma < 1/4) are kept.
    """
    if gamma > 0.25:
        raise ValueError(f"q_shift moves four channel groups, so gamma must be <= 1/4, got {gamma}")
    h, w = hw
    img = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
    g = int(x.shape[-1] * gamma)
    s = shift
    # pad once, then read each group through a window displaced towards the neighbour it copies
    padded = F.pad(img[:, : 4 * g], (s, s, s, s))
    parts = [
        padded[:, 0 * g:1 * g, s:s + h, 0:w],            # from the left: out[x] = in[x - s]
        padded[:, 1 * g:2 * g, s:s + h, 2 * s:2 * s + w],  # from the right
        padded[:, 2 * g:3 * g, 0:h, s:s + w],            # from above
        padded[:, 3 * g:4 * g, 2 * s:2 * s + h, s:s + w],  # from below
        img[:, 4 * g:],
    ]
    return rearrange(torch.cat(parts, dim=1), "b c h w -> b (h w) c")


def rwkv_mix_ratios(layer_id: int, num_layers: int) -> tuple[float, float]:
    """RWKV's depth ratios: (layer_id / (L - 1), 1 - layer_id / L) — 0 -> 1 and 1 -> ~0 over depth."""
    return layer_id / max(num_layers - 1, 1), 1.0 - layer_id / num_layers


def channel_ramp(dim: int) -> torch.Tensor:
    """(1, 1, dim) tensor with entries i / dim: the base of RWKV's "fancy" token-mix init."""
    return (torch.arange(dim, dtype=torch.float32) / dim).view(1, 1, dim)


def shift_lerp(x: torch.Tensor, shifted: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """RWKV's learned token-shift interpolation ``x * mix + shifted * (1 - mix)`` (dtype-promoting)."""
    return shifted + (x - shifted) * mix
