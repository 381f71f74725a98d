"""U-shaped diffusion backbone (DiCo's layout), hosting any registered token mixer at every level.

    x (B, C, H, W) -conv3x3-> level 1 (D, H, W) -down-> level 2 (2D, H/2) -down-> latent (4D, H/4)
      -up-> cat[., level 2] -1x1-> decoder 2 (2D, H/2) -up-> cat[., level 1] -1x1-> decoder 1 (2D, H)
      -> adaLN + conv3x3 head -> (B, C_out, H, W)

down = conv3x3(n -> n/2) + PixelUnshuffle(2); up = conv3x3(n -> 2n) + PixelShuffle(2) (no biases). Level i
blocks are conditioned on ``t_i + y_i`` from per-level embedders of widths D, 2D, 4D whose label tables
share one dropout mask; decoder level 1 runs at width 2D with the level-2 condition, as DiCo does.
Each stage computes in its mixer's layout (tokens or grid), converting once at each end. Attention-like
mixers get ``num_heads = width // head_dim`` per level. Parameter names follow the official DiCo code,
so its checkpoints convert by renaming the block internals only.
Paper: Ai et al., "DiCo: Revitalizing ConvNets for Scalable and Efficient Diffusion Modeling", 2025.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ..contract import Grid
from ..layers import ConvFinalLayer
from ..layers.conditioning import check_conditioning
from ..layers.layout import to_layout
from ..registry import BACKBONES, MIXERS, ComponentCfg, as_config, resolve_type
from .base import Denoiser
from .block import Block


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


class ConvStem(nn.Module):
    """3×3 conv (stride 1) from the input channels to the level-1 width: DiCo's overlapping patch embed."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


STAGES = ("encoder_level_1", "encoder_level_2", "latent", "decoder_level_2", "decoder_level_1")


@BACKBONES.register_module(name="unet")
class UNetBackbone(Denoiser):
    """Three-level U-shaped denoiser ``forward(x, t, y) -> (B, C_out, H, W)``; see the module docstring.

    Args:
        hidden_size: level-1 width D (levels run at D, 2D, 4D; both decoder levels at 2D).
        depths: blocks in (encoder 1, encoder 2, latent, decoder 2, decoder 1).
        mixer / ffn: any registered token mixer / FFN (DiCo: ``dico_conv`` and a GELU MLP of ratio 2).
        head_dim: attention-like mixers get ``max(1, width // head_dim)`` heads at each level.
        conditioning: ``"adaln_zero"`` (DiCo) or ``"adaln"``; the U-shape has no token sequence to
            carry in-context conditioning.
    """

    def __init__(self, input_size: int | tuple[int, int] = 32, in_channels: int = 4, hidden_size: int = 128,
                 depths: Sequence[int] = (5, 4, 4, 4, 4), *, mixer: ComponentCfg = "dico_conv",
                 ffn: ComponentCfg = dict(type="mlp", mlp_ratio=2.0, act="gelu"), head_dim: int = 32,
                 conditioning: str = "adaln_zero", num_classes: int = 1000, class_dropout_prob: float = 0.1,
                 learn_sigma: bool = True, norm_eps: float = 1e-6, drop_path_rate: float = 0.0,
                 grad_checkpointing: bool = False):
        super().__init__()
        if len(depths) != 5:
            raise ValueError(f"depths needs 5 entries (encoder 1, encoder 2, latent, decoder 2, decoder 1), got {depths}")
        check_conditioning(conditioning, allowed=("adaln_zero", "adaln"))
        self.setup_interface(input_size, in_channels, learn_sigma, num_classes, size_divisor=4)
        self.depths, self.grad_checkpointing = list(depths), grad_checkpointing
        mixer = as_config(mixer)
        self.layout = resolve_type(MIXERS, mixer["type"]).layout
        d = hidden_size
        widths = (d, 2 * d, 4 * d, 2 * d, 2 * d)
        self.stage_condition = (0, 1, 2, 1, 1)  # index of the per-level embedder each stage reads

        self.x_embedder = ConvStem(in_channels, d)
        self.build_embedders([d, 2 * d, 4 * d], class_dropout_prob)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        first_ids = [sum(depths[:i]) for i in range(5)]
        for name, width, depth, first in zip(STAGES, widths, depths, first_ids):
            heads = max(1, width // head_dim)
            self.add_module(name, nn.ModuleList(
                Block(width, heads, mixer=mixer, ffn=ffn, conditioning=conditioning, norm_eps=norm_eps,
                      drop_path=rates[first + i], layer_id=first + i, num_layers=total, layout=self.layout)
                for i in range(depth)))
        self.down1_2, self.down2_3 = Downsample(d), Downsample(2 * d)
        self.up3_2, self.up2_1 = Upsample(4 * d), Upsample(2 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, 1)
        self.reduce_chan_level1 = nn.Conv2d(2 * d, 2 * d, 1)
        self.final_layer = ConvFinalLayer(2 * d, self.out_channels)
        self.initialize_weights()

    def divisor_reason(self) -> str:
        return "4 (two 2x downsamplings)"

    def initialize_weights(self) -> None:
        """DiCo's scheme: xavier-uniform for the scaffold's linears and convs (the stem like a Linear over its
        flattened kernel), N(0, 0.02) embedders; parts with ``init_weights()`` (adaLN-Zero, head, mixers)
        initialise themselves."""
        self.init_parts(_xavier)
        proj = self.x_embedder.proj
        nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
        self.init_embedders_dit()

    def run_stage(self, name: str, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """One level's blocks in the stage layout: (B, D, H, W) grid in, grid out, one conversion each way."""
        grid = Grid((x.shape[2], x.shape[3]))
        x = to_layout(x, self.layout, grid.hw)
        for block in getattr(self, name):
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, c, grid, use_reentrant=False)
            else:
                x = block(x, c, grid)
        return to_layout(x, "grid", grid.hw)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) noisy input, t: (B,) timesteps, y: (B,) class ids or None -> (B, C_out, H, W)."""
        self.check_inputs(x, y)
        x = self.x_embedder(x)
        times, labels = self.embed_conditions(t, y, x, x.dtype)
        conds = times if labels is None else [a + b for a, b in zip(times, labels)]
        enc1 = self.run_stage("encoder_level_1", x, conds[0])
        enc2 = self.run_stage("encoder_level_2", self.down1_2(enc1), conds[1])
        latent = self.run_stage("latent", self.down2_3(enc2), conds[2])
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(latent), enc2], dim=1))
        dec2 = self.run_stage("decoder_level_2", dec2, conds[1])
        dec1 = self.reduce_chan_level1(torch.cat([self.up2_1(dec2), enc1], dim=1))
        dec1 = self.run_stage("decoder_level_1", dec1, conds[1])
        return self.final_layer(dec1, conds[1])


def _xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
