"""2-D sine-cosine position tables (MAE / DiT layout) and the position-embedding module."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import trunc_normal_


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim) table: [sin(p * omega), cos(p * omega)], omega_i = 10000^(-2i/dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64).reshape(-1, 1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_hw: tuple[int, int], extra_tokens: int = 0) -> torch.Tensor:
    """Frozen 2-D table for a row-major (H, W) token grid, shape (extra_tokens + H*W, dim), float32.

    The first half of the channels encodes the column (w) index and the second half the row index:
    DiT/MAE build the grid with ``meshgrid(w, h)`` ("w goes first"), and pretrained weights rely on it.
    Extra (in-context) tokens get zero rows, as MAE does for its class token.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    h, w = grid_hw
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)
    table = torch.cat([table.new_zeros(extra_tokens, dim), table], dim=0)
    return table.float()


class PositionEmbedding(nn.Module):
    """Adds a position table to (B, extra_tokens + H*W, D) tokens.

    ``kind``: ``"sincos_frozen"`` (DiT: a non-trainable parameter, recomputed for other grids),
    ``"sincos"`` (Diffusion-RWKV: trainable, initialised to sin-cos), ``"learned"`` (U-ViT: trainable,
    truncated-normal std 0.02), ``"none"``. Frozen tables still count as parameters, as in DiT.
    """

    kinds = ("sincos_frozen", "sincos", "learned", "none")

    def __init__(self, dim: int, grid_hw: tuple[int, int], kind: str = "sincos_frozen", extra_tokens: int = 0):
        super().__init__()
        if kind not in self.kinds:
            raise ValueError(f"unknown position embedding {kind!r}; choose one of {self.kinds}")
        self.dim, self.grid_hw, self.kind, self.extra_tokens = dim, tuple(grid_hw), kind, extra_tokens
        if kind == "none":
            self.register_parameter("pos_embed", None)
            return
        n = extra_tokens + grid_hw[0] * grid_hw[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim), requires_grad=kind != "sincos_frozen")
        self._other_grids: dict[tuple, torch.Tensor] = {}
        self.init_weights()

    def init_weights(self) -> None:
        if self.kind == "learned":
            trunc_normal_(self.pos_embed, std=0.02)
        elif self.kind != "none":
            with torch.no_grad():
                self.pos_embed.copy_(sincos_2d(self.dim, self.grid_hw, self.extra_tokens)[None])

    def table(self, grid_hw: tuple[int, int], ref: torch.Tensor) -> torch.Tensor:
        """The (1, extra + H*W, D) table for ``grid_hw``, in ``ref``'s device and dtype."""
        if tuple(grid_hw) == self.grid_hw:
            return self.pos_embed.to(ref.dtype)
        if self.kind != "sincos_frozen":
            raise ValueError(
                f"this model's {self.kind} position embedding was trained for a {self.grid_hw} token grid, "
                f"got {tuple(grid_hw)}: build it with the matching input_size"
            )
        key = (tuple(grid_hw), ref.device, ref.dtype)
        if key not in self._other_grids:
            self._other_grids[key] = sincos_2d(self.dim, grid_hw, self.extra_tokens)[None].to(ref)
        return self._other_grids[key]

    def forward(self, x: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        if self.pos_embed is None:
            return x
        return x + self.table(grid_hw, x)
