"""Timestep and class-label embedders (DiT / ADM conventions)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) possibly fractional timesteps -> (B, dim) features [cos(t f), sin(t f)], f_i = P^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of t, then Linear-SiLU-Linear (DiT); ``mlp=False`` gives U-ViT's raw sinusoid."""

    def __init__(self, dim: int, frequency_dim: int = 256, mlp: bool = True):
        super().__init__()
        self.dim = dim
        self.frequency_dim = frequency_dim if mlp else dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim)) if mlp else None

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.frequency_dim)
        return emb if self.mlp is None else self.mlp(emb.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class-label table(s) with classifier-free-guidance dropout.

    The table has ``num_classes + 1`` rows when ``dropout_prob > 0``: row ``num_classes`` is the
    "no label" embedding used for unconditional predictions. ``dim`` may be a list of widths (DiCo's
    per-level embedders): then there is one table per width (``embedding_table_0``, ``_1``, ...), all
    indexed by the same (possibly dropped) labels, and ``forward`` returns a tuple.
    """

    def __init__(self, num_classes: int, dim: int | Sequence[int], dropout_prob: float = 0.1):
        super().__init__()
        self.num_classes, self.dropout_prob = num_classes, dropout_prob
        self.null_id = num_classes if dropout_prob > 0 else None
        rows = num_classes + int(dropout_prob > 0)
        self.multi = not isinstance(dim, int)
        dims = list(dim) if self.multi else [dim]
        self.table_names = [f"embedding_table_{i}" for i in range(len(dims))] if self.multi else ["embedding_table"]
        for name, width in zip(self.table_names, dims):
            self.add_module(name, nn.Embedding(rows, width))

    def tables(self) -> list[nn.Embedding]:
        return [getattr(self, name) for name in self.table_names]

    def check_labels(self, y: torch.Tensor) -> None:
        high = self.num_classes if self.null_id is not None else self.num_classes - 1
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"class labels must be an integer tensor, got {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > high):
            raise ValueError(
                f"class label out of range: got values in [{int(y.min())}, {int(y.max())}], the model has "
                f"{self.num_classes} classes (ids 0..{self.num_classes - 1}"
                + (f", {self.null_id} = unconditional)" if self.null_id is not None else ")")
            )

    def drop_labels(self, y: torch.Tensor, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """Replace a random ``dropout_prob`` fraction (or the ``force_drop`` ones) by the null id."""
        if self.null_id is None:
            return y
        drop = force_drop.bool() if force_drop is not None else torch.rand(y.shape, device=y.device) < self.dropout_prob
        return torch.where(drop, torch.full_like(y, self.null_id), y)

    def forward(self, y: torch.Tensor, force_drop: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        self.check_labels(y)
        if (self.training and self.dropout_prob > 0) or force_drop is not None:
            y = self.drop_labels(y, force_drop)
        embeddings = tuple(table(y) for table in self.tables())
        return embeddings if self.multi else embeddings[0]
