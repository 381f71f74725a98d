"""Stages: runs of blocks at one width and layout, the unit both scaffolds are built of.

A :class:`Stage` is a list of :class:`~visionmix.backbones.block.Block` run one after another, each under gradient
checkpointing when asked, optionally taking long-skip inputs (U-ViT's out-blocks) or handing its outputs on
(in-blocks). :func:`drop_path_rates` is the stochastic-depth schedule over all blocks of a model. A pyramid joins its
levels with :class:`Downsample` / :class:`Upsample` (DiCo's: a 3x3 conv, then PixelUnshuffle / PixelShuffle by 2).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ..contract import Grid


def drop_path_rates(num_blocks: int, rate: float, *, last_block_gets_rate: bool) -> list[float]:
    """Linear stochastic depth from 0: DiT / U-ViT / Diffusion-RWKV step ``rate / num_blocks`` (``linspace(0, rate,
    n + 1)[:n]``: the last block stays below ``rate``); DiCo reaches ``rate`` at its last block
    (``linspace(0, rate, n)``)."""
    steps = max(num_blocks - 1, 1) if last_block_gets_rate else num_blocks
    return [rate * i / steps for i in range(num_blocks)]


def run_block(block: nn.Module, *args: object, checkpointing: bool = False) -> torch.Tensor:
    """``block(*args)``, recomputed in the backward pass instead of stored when ``checkpointing``."""
    return checkpoint(block, *args, use_reentrant=False) if checkpointing else block(*args)


class Stage(nn.ModuleList):
    """Blocks in sequence (a ``ModuleList``: parameter names are ``<stage>.<i>.*``, as the official codes have them)."""

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, grid: Grid, *, checkpointing: bool = False,
                skips_in: list[torch.Tensor] | None = None,
                skips_out: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``skips_in``: each block joins the last entry (popped: last in, first out); ``skips_out``: each block's
        output is appended."""
        for block in self:
            args = (x, c, grid) + ((skips_in.pop(),) if skips_in is not None else ())
            x = run_block(block, *args, checkpointing=checkpointing)
            if skips_out is not None:
                skips_out.append(x)
        return x


class Downsample(nn.Module):
    """conv3x3 (n -> n/2) then PixelUnshuffle(2): (B, n, H, W) -> (B, 2n, H/2, W/2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """conv3x3 (n -> 2n) then PixelShuffle(2): (B, n, H, W) -> (B, n/2, 2H, 2W)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
