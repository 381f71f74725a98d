"""U-shaped diffusion backbone (DiCo's layout, any number of levels), hosting any registered token mixer.

With L levels (DiCo: 3) and level-1 width D, level i runs at D * 2^(i-1):

    x (B, C, H, W) -conv3x3-> encoder 1 (D, H) -down-> encoder 2 (2D, H/2) ... -down-> latent (D 2^(L-1), H/2^(L-1))
      -up-> cat[., encoder i] -1x1-> decoder i (D 2^(i-1); decoder 1 at 2D) ... -> adaLN + conv3x3 head -> C_out

down = conv3x3(n -> n/2) + PixelUnshuffle(2); up = conv3x3(n -> 2n) + PixelShuffle(2) (no biases). Level i
blocks are conditioned on ``t_i + y_i`` from per-level embedders of widths D, 2D, ... whose label tables share one
dropout mask; decoder level 1 runs at width 2D with the level-2 condition, as DiCo does. Each stage computes in its
mixer's layout (tokens or grid), converting once at each end. Attention-like mixers get ``num_heads = width //
head_dim`` per level. Parameter names follow the official DiCo code (``encoder_level_1``, ``latent``, ``down1_2``,
``up3_2``, ``reduce_chan_level2``, ...), so its checkpoints convert by renaming the block internals only.
Paper: Ai et al., "DiCo: Revitalizing ConvNets for Scalable and Efficient Diffusion Modeling", 2025.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..contract import Grid
from ..layers import ConvFinalLayer
from ..layers.conditioning import check_conditioning
from ..layers.init import xavier_linear_conv_
from ..layers.layout import to_layout
from ..registry import BACKBONES, MIXERS, ComponentCfg, as_config, resolve_type
from .base import Denoiser
from .block import Block
from .stage import Downsample, Stage, Upsample, drop_path_rates


class ConvStem(nn.Module):
    """3×3 conv (stride 1) from the input channels to the level-1 width: DiCo's overlapping patch embed."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


@BACKBONES.register_module(name="unet")
class UNetBackbone(Denoiser):
    """U-shaped denoiser ``forward(x, t, y) -> (B, C_out, H, W)``; see the module docstring.

    Args:
        hidden_size: level-1 width D (level i at D * 2^(i-1); decoder level 1 at 2D).
        depths: blocks per stage, 2L - 1 entries for L levels: (encoder 1, ..., encoder L-1, latent, decoder L-1,
            ..., decoder 1); DiCo's 3 levels are 5 entries.
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
        if len(depths) < 3 or len(depths) % 2 == 0:
            raise ValueError(f"depths needs 2L - 1 entries for L >= 2 levels (encoder levels, latent, decoder "
                             f"levels; DiCo's 3 levels: 5 entries), got {list(depths)}")
        check_conditioning(conditioning, allowed=("adaln_zero", "adaln"))
        self.levels = levels = (len(depths) + 1) // 2
        self.setup_interface(input_size, in_channels, learn_sigma, num_classes, size_divisor=2 ** (levels - 1))
        self.depths, self.grad_checkpointing = list(depths), grad_checkpointing
        mixer = as_config(mixer)
        self.layout = resolve_type(MIXERS, mixer["type"]).layout
        d = hidden_size
        level_width = [d * 2 ** i for i in range(levels)]  # encoder i and latent; decoder i > 1 too
        decoder_width = [2 * d] + level_width[1:-1]  # decoder 1 runs at 2D (DiCo)
        encoders = [f"encoder_level_{i}" for i in range(1, levels)]
        decoders = [f"decoder_level_{i}" for i in range(levels - 1, 0, -1)]
        self.stage_names = encoders + ["latent"] + decoders
        widths = level_width[:-1] + [level_width[-1]] + decoder_width[::-1]
        # the per-level embedder each stage reads: its own level's; decoder 1 reads level 2's, as DiCo
        self.stage_condition = list(range(levels - 1)) + [levels - 1] + [max(i, 1) for i in range(levels - 2, -1, -1)]

        self.x_embedder = ConvStem(in_channels, d)
        self.build_embedders(level_width, class_dropout_prob)
        total = sum(depths)
        rates = drop_path_rates(total, drop_path_rate, last_block_gets_rate=True)
        first_ids = [sum(depths[:i]) for i in range(len(depths))]
        for name, width, depth, first in zip(self.stage_names, widths, depths, first_ids):
            heads = max(1, width // head_dim)
            self.add_module(name, Stage(
                Block(width, heads, mixer=mixer, ffn=ffn, conditioning=conditioning, norm_eps=norm_eps,
                      drop_path=rates[first + i], layer_id=first + i, num_layers=total, layout=self.layout)
                for i in range(depth)))
        for i in range(1, levels):
            self.add_module(f"down{i}_{i + 1}", Downsample(level_width[i - 1]))
        previous = [level_width[-1]] + decoder_width[:0:-1]  # what arrives at decoder i from below, i = L-1 .. 1
        for i, below in zip(range(levels - 1, 0, -1), previous):
            self.add_module(f"up{i + 1}_{i}", Upsample(below))
        for i, below in zip(range(levels - 1, 0, -1), previous):
            joined = below // 2 + level_width[i - 1]  # the upsampled input beside encoder i's output
            self.add_module(f"reduce_chan_level{i}", nn.Conv2d(joined, decoder_width[i - 1], 1))
        self.final_layer = ConvFinalLayer(2 * d, self.out_channels)
        self.initialize_weights()

    def divisor_reason(self) -> str:
        return f"{2 ** (self.levels - 1)} ({self.levels - 1} 2x downsamplings)"

    def initialize_weights(self) -> None:
        """DiCo's scheme: xavier-uniform for the scaffold's linears and convs (the stem like a Linear over its
        flattened kernel), N(0, 0.02) embedders; parts with ``init_weights()`` (adaLN-Zero, head, mixers)
        initialise themselves."""
        self.init_parts(xavier_linear_conv_)
        proj = self.x_embedder.proj
        nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
        self.init_embedders_dit()

    def run_stage(self, name: str, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """One stage in the stage layout: (B, D, H, W) grid in, grid out, one conversion each way."""
        grid = Grid((x.shape[2], x.shape[3]))
        x = to_layout(x, self.layout, grid.hw)
        x = getattr(self, name)(x, c, grid, checkpointing=self.grad_checkpointing and self.training)
        return to_layout(x, "grid", grid.hw)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) noisy input, t: (B,) timesteps, y: (B,) class ids or None -> (B, C_out, H, W)."""
        self.check_inputs(x, y)
        x = self.x_embedder(x)
        times, labels = self.embed_conditions(t, y, x, x.dtype)
        conds = times if labels is None else [a + b for a, b in zip(times, labels)]
        cond_of = dict(zip(self.stage_names, (conds[i] for i in self.stage_condition)))
        encoded = []
        for i in range(1, self.levels):
            x = self.run_stage(f"encoder_level_{i}", x, cond_of[f"encoder_level_{i}"])
            encoded.append(x)
            x = getattr(self, f"down{i}_{i + 1}")(x)
        x = self.run_stage("latent", x, cond_of["latent"])
        for i in range(self.levels - 1, 0, -1):
            x = torch.cat([getattr(self, f"up{i + 1}_{i}")(x), encoded.pop()], dim=1)
            x = getattr(self, f"reduce_chan_level{i}")(x)
            x = self.run_stage(f"decoder_level_{i}", x, cond_of[f"decoder_level_{i}"])
        return self.final_layer(x, cond_of["decoder_level_1"])
