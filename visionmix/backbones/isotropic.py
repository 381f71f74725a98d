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
from timm.layers import PatchEmbed, trunc_normal_
from torch.utils.checkpoint import checkpoint

from ..layers import (AdaLNFinalLayer, LabelEmbedder, LinearFinalLayer, PositionEmbedding, TimestepEmbedder,
                      unpatchify)
from ..layers.conditioning import check_conditioning
from ..registry import BACKBONES, MIXERS, ComponentCfg, as_config, resolve_type
from .block import Block


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


@BACKBONES.register_module(name="isotropic")
class IsotropicBackbone(nn.Module):
    """All-token-same-width denoiser ``forward(x, t, y) -> (B, C_out, H, W)``; see the module docstring.

    Args:
        input_size: latent/image size (int or (H, W)) the position table is built for.
        mixer / ffn: registered name, class or config dict of the token / channel mixer.
        conditioning: ``"adaln_zero"`` | ``"adaln"`` | ``"in_context"``.
        skip: ``"none"`` | ``"long"``.
        num_classes: 0 for an unconditional model; otherwise the label table has num_classes+1 rows
            (the last is the classifier-free-guidance null label) when ``class_dropout_prob > 0``.
        pos_embed: ``"sincos_frozen"`` | ``"sincos"`` | ``"learned"`` | ``"none"`` (see PositionEmbedding).
        time_embed_mlp: DiT's Linear-SiLU-Linear on 256 frequencies; False = raw D-dim sinusoid (U-ViT).
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
                 grad_checkpointing: bool = False):
        super().__init__()
        if skip not in ("none", "long"):
            raise ValueError(f"unknown skip {skip!r}; choose 'none' or 'long'")
        if init_style not in ("dit", "vit"):
            raise ValueError(f"unknown init_style {init_style!r}; choose 'dit' or 'vit'")
        self.conditioning = check_conditioning(conditioning)
        self.input_size, self.patch_size = _pair(input_size), patch_size
        for side in self.input_size:
            if side % patch_size:
                raise ValueError(f"input_size {self.input_size} is not divisible by patch_size {patch_size}")
        self.in_channels, self.skip, self.init_style = in_channels, skip, init_style
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes, self.grad_checkpointing = num_classes, grad_checkpointing
        self.extra_tokens = (1 + int(num_classes > 0)) if conditioning == "in_context" else 0
        mixer = as_config(mixer)
        if self.extra_tokens and not getattr(resolve_type(MIXERS, mixer["type"]), "accepts_extra_tokens", False):
            raise ValueError(
                f"mixer {mixer['type']!r} works on the H*W token grid only, so it cannot carry in-context "
                "condition tokens: use conditioning='adaln_zero' or 'adaln' with it"
            )

        self.x_embedder = PatchEmbed(None, patch_size, in_channels, hidden_size, bias=True, strict_img_size=False)
        self.t_embedder = TimestepEmbedder(hidden_size, mlp=time_embed_mlp)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob) if num_classes > 0 else None
        grid = (self.input_size[0] // patch_size, self.input_size[1] // patch_size)
        self.pos_embed = PositionEmbedding(hidden_size, grid, pos_embed, self.extra_tokens)

        num_blocks = depth if skip == "none" else 2 * (depth // 2) + 1
        rates = [drop_path_rate * i / num_blocks for i in range(num_blocks + 1)]  # linspace(0, rate, n + 1)

        def make_block(i: int) -> Block:
            return Block(hidden_size, num_heads, mixer=mixer, ffn=ffn, conditioning=conditioning,
                         norm_affine=norm_affine, norm_eps=norm_eps, drop_path=rates[i],
                         skip=skip == "long" and i > depth // 2, first_norm=first_norm and i == 0,
                         layer_id=i, num_layers=num_blocks)

        if skip == "none":
            self.blocks = nn.ModuleList(make_block(i) for i in range(num_blocks))
        else:
            self.in_blocks = nn.ModuleList(make_block(i) for i in range(depth // 2))
            self.mid_block = make_block(depth // 2)
            self.out_blocks = nn.ModuleList(make_block(i) for i in range(depth // 2 + 1, num_blocks))
        self.norm_f = nn.LayerNorm(hidden_size, eps=norm_eps) if final_norm else None
        head = LinearFinalLayer if conditioning == "in_context" else AdaLNFinalLayer
        self.final_layer = head(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        if self.init_style == "dit":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            proj = self.x_embedder.proj  # initialised like a Linear over the flattened patch
            nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
            nn.init.zeros_(proj.bias)
            if self.y_embedder is not None:
                nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
            if self.t_embedder.mlp is not None:
                nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
                nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        else:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        # part-specific init (zeroed adaLN / head, position tables, mixers' own schemes) runs last
        for m in self.modules():
            if m is not self and hasattr(m, "init_weights"):
                m.init_weights()

    # --------------------------------------------------------------- forward
    def check_inputs(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (input {tuple(x.shape)})")
        if x.shape[2] % self.patch_size or x.shape[3] % self.patch_size:
            raise ValueError(f"image size {tuple(x.shape[2:])} is not divisible by patch_size {self.patch_size}: "
                             "resize/crop the input or choose another patch size")
        if y is not None and self.y_embedder is None:
            raise ValueError("this model is unconditional (num_classes=0): call it with y=None")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) noisy input, t: (B,) timesteps, y: (B,) class ids or None -> (B, C_out, H, W)."""
        self.check_inputs(x, y)
        hw = (x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        tokens = self.x_embedder(x)
        c = self.t_embedder(t).to(tokens.dtype)
        if self.y_embedder is not None:
            if y is None:
                if self.y_embedder.null_id is None:
                    raise ValueError("this class-conditional model has no null label (class_dropout_prob=0): pass y")
                y = torch.full((x.shape[0],), self.y_embedder.null_id, dtype=torch.long, device=x.device)
            y_emb = self.y_embedder(y).to(tokens.dtype)
        if self.conditioning == "in_context":
            extras = [y_emb, c] if self.y_embedder is not None else [c]
            tokens, c = torch.cat([torch.stack(extras, dim=1), tokens], dim=1), None
        elif self.y_embedder is not None:
            c = c + y_emb
        tokens = self.pos_embed(tokens, hw)
        tokens = self.forward_blocks(tokens, c, hw)
        if self.norm_f is not None:
            tokens = self.norm_f(tokens)
        out = self.final_layer(tokens, c)[:, self.extra_tokens:]
        return unpatchify(out, hw, self.patch_size)

    def _run(self, block: Block, *args: torch.Tensor | tuple | None) -> torch.Tensor:
        if self.grad_checkpointing and self.training:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward_blocks(self, x: torch.Tensor, c: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor:
        if self.skip == "none":
            for block in self.blocks:
                x = self._run(block, x, c, hw)
            return x
        skips = []
        for block in self.in_blocks:
            x = self._run(block, x, c, hw)
            skips.append(x)
        x = self._run(self.mid_block, x, c, hw)
        for block in self.out_blocks:  # last in, first out: out-block j meets in-block depth//2-1-j
            x = self._run(block, x, c, hw, skips.pop())
        return x

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float,
                         guided_channels: int | None = 3) -> torch.Tensor:
        """Classifier-free guidance on a doubled batch whose second half carries null labels.

        Only the first half of ``x`` is used (DiT's convention); ``guided_channels`` output channels get
        ``uncond + s * (cond - uncond)`` (DiT guides 3 for exact reproducibility; None = every noise
        channel, i.e. ``in_channels``); the remaining channels (learned variance) pass through.
        """
        if self.y_embedder is None or self.y_embedder.null_id is None:
            raise ValueError("classifier-free guidance needs a class-conditional model with a null label")
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half]), t, y)
        n = self.in_channels if guided_channels is None else guided_channels
        eps, rest = out[:, :n], out[:, n:]
        cond, uncond = eps.chunk(2)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided]), rest], dim=1)
