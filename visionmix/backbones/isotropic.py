"""Isotropic diffusion backbone: DiT, U-ViT and Diffusion-RWKV are configurations of this one class.

    x (B, C, H, W) -> patches (B, H/p * W/p, D) + positions -> [cond tokens] -> blocks -> head -> (B, C_out, H, W)

Blocks are chained (``skip="none"``, DiT) or joined by U-ViT long skips (``skip="long"``: depth//2
in-blocks, one mid block, depth//2 out-blocks; out-block j receives the output of in-block
depth//2-1-j through ``Linear(cat[x, skip])``). Conditioning is adaLN-Zero / adaLN on the summed
time + label embedding, or in-context tokens ``[label, time, patches]`` (U-ViT), removed before the head.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import PatchEmbed

from ..contract import Grid
from ..layers import AdaLNFinalLayer, LinearFinalLayer, PositionEmbedding, unpatchify
from ..layers.conditioning import check_conditioning
from ..layers.init import trunc_normal_linear_, xavier_linear_
from ..registry import BACKBONES, MIXERS, ComponentCfg, as_config, resolve_type
from .base import Denoiser
from .block import Block
from .stage import Stage, drop_path_rates, run_block


@BACKBONES.register_module(name="isotropic")
class IsotropicBackbone(Denoiser):
    """All-token-same-width denoiser ``forward(x, t, y) -> (B, C_out, H, W)``; see the module docstring.

    Args:
        input_size: latent/image size (int or (H, W)) the position table is built for.
        mixer / ffn: registered name, class or config dict of the token / channel mixer.
        conditioning: ``"adaln_zero"`` | ``"adaln"`` | ``"in_context"``.
        skip: ``"none"`` | ``"long"``.
        num_classes: 0 for an unconditional model; otherwise the label table has num_classes+1 rows
            (the last is the classifier-free-guidance null label) when ``class_dropout_prob > 0``.
        pos_embed: ``"sincos_frozen"`` | ``"sincos"`` | ``"learned"`` | ``"fuzzy"`` (ViTAR) | ``"none"`` (see
            PositionEmbedding); every kind runs at other input sizes (recomputed, resampled or sampled).
        time_embed_mlp: DiT's Linear-SiLU-Linear on 256 frequencies; False = raw D-dim sinusoid (U-ViT).
        timestep_offset: added to t before it is embedded: U-ViT's released models number the steps 1..1000
            where visionmix uses 0..999, so their config sets 1.
        norm_affine / norm_eps: the blocks' LayerNorms (DiT: no affine, 1e-6; DRWKV: affine, 1e-5).
        first_norm: LayerNorm on the first block's input; final_norm: LayerNorm before the head.
        init_style: ``"dit"`` (xavier linears, zeroed adaLN and head) or ``"vit"`` (trunc-normal 0.02, U-ViT).
    """

    def __init__(self, input_size: int | tuple[int, int] = 32, patch_size: int = 2, in_channels: int = 4,
                 hidden_size: int = 1152, depth: int = 28, num_heads: int = 16, *,
                 mixer: ComponentCfg = "attention", ffn: ComponentCfg = "mlp", conditioning: str = "adaln_zero",
                 skip: str = "none", num_classes: int = 1000, class_dropout_prob: float = 0.1,
                 learn_sigma: bool = True, pos_embed: str = "sincos_frozen", time_embed_mlp: bool = True,
                 norm_affine: bool = False, norm_eps: float = 1e-6, first_norm: bool = False,
                 final_norm: bool = False, drop_path_rate: float = 0.0, init_style: str = "dit",
                 grad_checkpointing: bool = False, timestep_offset: int = 0):
        super().__init__()
        if skip not in ("none", "long"):
            raise ValueError(f"unknown skip {skip!r}; choose 'none' or 'long'")
        if init_style not in ("dit", "vit"):
            raise ValueError(f"unknown init_style {init_style!r}; choose 'dit' or 'vit'")
        self.conditioning = check_conditioning(conditioning)
        self.patch_size = patch_size  # before setup_interface: its error message names it
        self.setup_interface(input_size, in_channels, learn_sigma, num_classes, size_divisor=patch_size)
        self.skip, self.init_style, self.grad_checkpointing = skip, init_style, grad_checkpointing
        self.timestep_offset = timestep_offset
        self.extra_tokens = (1 + int(num_classes > 0)) if conditioning == "in_context" else 0
        mixer = as_config(mixer)
        if self.extra_tokens and not resolve_type(MIXERS, mixer["type"]).accepts_extra_tokens:
            raise ValueError(
                f"mixer {mixer['type']!r} works on the H*W token grid only, so it cannot carry in-context "
                "condition tokens: use conditioning='adaln_zero' or 'adaln' with it"
            )

        self.x_embedder = PatchEmbed(None, patch_size, in_channels, hidden_size, bias=True, strict_img_size=False)
        self.build_embedders(hidden_size, class_dropout_prob, time_embed_mlp)
        grid = (self.input_size[0] // patch_size, self.input_size[1] // patch_size)
        self.pos_embed = PositionEmbedding(hidden_size, grid, pos_embed, self.extra_tokens)

        num_blocks = depth if skip == "none" else 2 * (depth // 2) + 1
        rates = drop_path_rates(num_blocks, drop_path_rate, last_block_gets_rate=False)

        def make_block(i: int) -> Block:
            return Block(hidden_size, num_heads, mixer=mixer, ffn=ffn, conditioning=conditioning,
                         norm_affine=norm_affine, norm_eps=norm_eps, drop_path=rates[i],
                         skip=skip == "long" and i > depth // 2, first_norm=first_norm and i == 0,
                         layer_id=i, num_layers=num_blocks)

        if skip == "none":
            self.blocks = Stage(make_block(i) for i in range(num_blocks))
        else:
            self.in_blocks = Stage(make_block(i) for i in range(depth // 2))
            self.mid_block = make_block(depth // 2)
            self.out_blocks = Stage(make_block(i) for i in range(depth // 2 + 1, num_blocks))
        self.norm_f = nn.LayerNorm(hidden_size, eps=norm_eps) if final_norm else None
        head = LinearFinalLayer if conditioning == "in_context" else AdaLNFinalLayer
        self.final_layer = head(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """Parts with ``init_weights()`` (adaLN, head, position table, mixers that define one) initialise
        themselves; the scaffold's own layers get DiT's xavier scheme or U-ViT's trunc-normal(0.02)."""
        self.init_parts(xavier_linear_ if self.init_style == "dit" else trunc_normal_linear_)
        if self.init_style == "dit":
            proj = self.x_embedder.proj  # initialised like a Linear over the flattened patch
            nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
            nn.init.zeros_(proj.bias)
            self.init_embedders_dit()

    # --------------------------------------------------------------- forward
    def divisor_reason(self) -> str:
        return f"patch_size {self.patch_size}"

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) noisy input, t: (B,) timesteps, y: (B,) class ids or None -> (B, C_out, H, W)."""
        self.check_inputs(x, y)
        hw = (x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        tokens = self.x_embedder(x)
        (c,), labels = self.embed_conditions(t, y, x, tokens.dtype)
        if self.conditioning == "in_context":
            extras = [labels[0], c] if labels is not None else [c]
            tokens, c = torch.cat([torch.stack(extras, dim=1), tokens], dim=1), None
        elif labels is not None:
            c = c + labels[0]
        tokens = self.pos_embed(tokens, hw)
        tokens = self.forward_blocks(tokens, c, Grid(hw, extra_tokens=self.extra_tokens))
        if self.norm_f is not None:
            tokens = self.norm_f(tokens)
        out = self.final_layer(tokens, c)[:, self.extra_tokens:]
        return unpatchify(out, hw, self.patch_size)

    def forward_blocks(self, x: torch.Tensor, c: torch.Tensor | None, grid: Grid) -> torch.Tensor:
        checkpointing = self.grad_checkpointing and self.training
        if self.skip == "none":
            return self.blocks(x, c, grid, checkpointing=checkpointing)
        skips: list[torch.Tensor] = []
        x = self.in_blocks(x, c, grid, checkpointing=checkpointing, skips_out=skips)
        x = run_block(self.mid_block, x, c, grid, checkpointing=checkpointing)
        # last in, first out: out-block j meets in-block depth//2-1-j
        return self.out_blocks(x, c, grid, checkpointing=checkpointing, skips_in=skips)
