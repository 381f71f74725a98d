"""Adaptive layer norm conditioning (DiT's adaLN and adaLN-Zero)."""
from __future__ import annotations

import torch
import torch.nn as nn

CONDITIONING_MODES = ("adaln_zero", "adaln", "in_context")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x: (B, N, D), shift/scale: (B, D) -> x * (1 + scale) + shift."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLNModulation(nn.Module):
    """SiLU + Linear(D, chunks*D) mapping the condition vector to ``chunks`` (B, D) tensors.

    The projection starts at zero, so every shift/scale (and adaLN-Zero gate) starts at 0: adaLN-Zero
    blocks begin as the identity and the modulated norms begin un-modulated.
    """

    def __init__(self, dim: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim, chunks * dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(c)).chunk(self.chunks, dim=-1)


def check_conditioning(mode: str) -> str:
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"unknown conditioning {mode!r}; choose one of {CONDITIONING_MODES}")
    return mode
