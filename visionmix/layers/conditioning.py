"""Adaptive layer norm conditioning (DiT's adaLN and adaLN-Zero), for token and grid layouts."""
from __future__ import annotations

import torch
import torch.nn as nn

CONDITIONING_MODES = ("adaln_zero", "adaln", "in_context")


def per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (B, D) vector shaped to broadcast over ``x``: (B, 1, D) for tokens (B, N, D), (B, D, 1, 1) for grids."""
    return v.unsqueeze(1) if x.ndim == 3 else v[:, :, None, None]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` per channel; x (B, N, D) tokens or (B, D, H, W) grid, shift/scale (B, D)."""
    return x * (1 + per_channel(scale, x)) + per_channel(shift, x)


class AdaLNModulation(nn.Module):
    """SiLU + Linear(cond_dim, chunks*dim) mapping the condition vector to ``chunks`` (B, dim) tensors.

    ``cond_dim`` defaults to ``dim``; the two differ when one condition vector drives blocks of another
    width. The projection starts at zero, so every shift/scale (and adaLN-Zero gate) starts at 0:
    adaLN-Zero blocks begin as the identity and the modulated norms begin un-modulated.
    """

    def __init__(self, dim: int, chunks: int, cond_dim: int | None = None):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(cond_dim or dim, chunks * dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(c)).chunk(self.chunks, dim=-1)


def check_conditioning(mode: str, allowed: tuple[str, ...] = CONDITIONING_MODES) -> str:
    if mode not in allowed:
        raise ValueError(f"unknown conditioning {mode!r}; choose one of {allowed}")
    return mode
