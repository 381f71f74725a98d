"""2-D sine-cosine position tables (MAE / DiT layout) and the position-embedding module."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, trunc_normal_


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
    truncated-normal std 0.02), ``"fuzzy"`` (ViTAR), ``"none"``. Frozen tables still count as parameters,
    as in DiT. Trainable tables meet another grid by bicubic resampling (timm's ``resample_abs_pos_embed``).

    ``"fuzzy"`` (Fan et al., "ViTAR: Vision Transformer with Any Resolution", 2024): a trainable sin-cos-
    initialised grid read with ``grid_sample`` (bilinear) at each token's centre, in the [-1, 1] coordinates
    of the trained grid; in training each token's coordinate moves by a uniform random offset of up to half
    a token in each direction, so the model learns positions between the table's cells and runs at other
    resolutions. At eval the coordinates are exact: on the trained grid the table is returned as it is.
    """

    kinds = ("sincos_frozen", "sincos", "learned", "fuzzy", "none")

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
        """The (1 or B, extra + H*W, D) table for ``grid_hw``, in ``ref``'s device and dtype."""
        if self.kind == "fuzzy" and (self.training or tuple(grid_hw) != self.grid_hw):
            return self.fuzzy_table(grid_hw, ref)
        if tuple(grid_hw) == self.grid_hw:
            return self.pos_embed.to(ref.dtype)
        if self.kind != "sincos_frozen":
            return resample_abs_pos_embed(self.pos_embed, list(grid_hw), list(self.grid_hw),
                                          num_prefix_tokens=self.extra_tokens).to(ref.dtype)
        key = (tuple(grid_hw), ref.device, ref.dtype)
        if key not in self._other_grids:
            self._other_grids[key] = sincos_2d(self.dim, grid_hw, self.extra_tokens)[None].to(ref)
        return self._other_grids[key]

    def fuzzy_table(self, grid_hw: tuple[int, int], ref: torch.Tensor) -> torch.Tensor:
        """ViTAR's fuzzy positions: the trained grid sampled at (jittered in training) token centres."""
        (h, w), (gh, gw), batch = grid_hw, self.grid_hw, ref.shape[0]
        cells = self.pos_embed[:, self.extra_tokens:].reshape(1, gh, gw, self.dim).permute(0, 3, 1, 2)
        rows = (torch.arange(h, device=ref.device, dtype=torch.float32) + 0.5) / h * 2 - 1
        cols = (torch.arange(w, device=ref.device, dtype=torch.float32) + 0.5) / w * 2 - 1
        coords = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1).expand(batch, h, w, 2)
        if self.training:  # up to half a token each way: a token's cell, in the [-1, 1] units of its grid
            half_cell = torch.tensor([1.0 / w, 1.0 / h], device=ref.device)
            coords = coords + (torch.rand(batch, h, w, 2, device=ref.device) * 2 - 1) * half_cell
        sampled = F.grid_sample(cells.expand(batch, -1, -1, -1).float(), coords, mode="bilinear",
                                padding_mode="border", align_corners=False)
        grid_part = sampled.flatten(2).transpose(1, 2)
        extras = self.pos_embed[:, :self.extra_tokens].expand(batch, -1, -1).float()
        return torch.cat([extras, grid_part], dim=1).to(ref.dtype)

    def forward(self, x: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        if self.pos_embed is None:
            return x
        return x + self.table(grid_hw, x)
