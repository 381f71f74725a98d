"""One residual block shared by every scaffold: norm -> (conditioning) -> token mixer, norm -> FFN."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
from timm.layers import DropPath

from ..contract import Grid, as_grid
from ..layers.conditioning import AdaLNModulation, check_conditioning, modulate, per_channel
from ..layers.layout import channel_norm, to_layout
from ..registry import FFNS, MIXERS, ComponentCfg, build

# modulation chunks per conditioning mode: adaLN-Zero adds a gate to each residual branch
_CHUNKS = {"adaln_zero": 6, "adaln": 4, "in_context": 0}


class Block(nn.Module):
    """``x + gate1 * mixer(mod(norm1(x))) ; x + gate2 * ffn(mod(norm2(x)))`` (DiT), or its variants.

    - ``conditioning="adaln_zero"``: shift/scale/gate from the condition vector, zero-initialised (DiT).
    - ``"adaln"``: shift/scale only. ``"in_context"``: plain pre-norm block, conditioning rides in tokens.
    - ``skip=True``: U-ViT long skip, ``x = skip_linear(cat[x, skip])`` before anything else.
    - ``first_norm=True``: an extra LayerNorm ``ln0`` on the block input (Diffusion-RWKV's first block).
    - ``layout``: the layout ``x`` arrives in (``"tokens"`` (B, N, D) or ``"grid"`` (B, D, H, W)). The
      norms and modulation follow it; a mixer or FFN that computes in the other layout is wrapped in a
      conversion, so a stage built in its mixer's layout converts once, at its ends, not per block.
    - ``cond_dim``: width of the condition vector when it differs from ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, *, mixer: ComponentCfg = "attention", ffn: ComponentCfg = "mlp",
                 conditioning: str = "adaln_zero", norm_affine: bool = False, norm_eps: float = 1e-6,
                 drop_path: float = 0.0, skip: bool = False, first_norm: bool = False,
                 layer_id: int = 0, num_layers: int = 1, layout: str = "tokens", cond_dim: int | None = None):
        super().__init__()
        self.conditioning = check_conditioning(conditioning)
        self.layout, self.layer_id = layout, layer_id
        if skip and layout != "tokens":
            raise ValueError("long skips (skip_linear) join token sequences: build the block with layout='tokens'")
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.ln0 = channel_norm(dim, layout, norm_eps, norm_affine) if first_norm else None
        self.norm1 = channel_norm(dim, layout, norm_eps, norm_affine)
        self.mixer = build(MIXERS, mixer, dim=dim, num_heads=num_heads, layer_id=layer_id, num_layers=num_layers)
        self.norm2 = channel_norm(dim, layout, norm_eps, norm_affine)
        self.ffn = build(FFNS, ffn, dim=dim, layer_id=layer_id, num_layers=num_layers)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        chunks = _CHUNKS[conditioning]
        self.adaLN_modulation = AdaLNModulation(dim, chunks, cond_dim) if chunks else None

    def run_in_own_layout(self, part: nn.Module, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """``part(x, grid)``, converting ``x`` to the part's layout and back when the two differ."""
        own = part.layout
        if own in ("any", self.layout):
            return part(x, grid)
        return to_layout(part(to_layout(x, own, grid.hw), grid), self.layout, grid.hw)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, grid: Grid | tuple[int, int],
                skip: torch.Tensor | None = None) -> torch.Tensor:
        """``grid``: what the scaffold knows of the tokens (a bare (H, W) for a block on its own); the mixer and
        FFN see it with this block's ``layer_id``."""
        grid = dataclasses.replace(as_grid(grid, x), layer_id=self.layer_id)
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        if self.ln0 is not None:
            x = self.ln0(x)
        if self.conditioning == "in_context":
            x = x + self.drop_path(self.run_in_own_layout(self.mixer, self.norm1(x), grid))
            return x + self.drop_path(self.run_in_own_layout(self.ffn, self.norm2(x), grid))
        if self.conditioning == "adaln_zero":
            shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)
            gate1, gate2 = per_channel(gate1, x), per_channel(gate2, x)
        else:
            shift1, scale1, shift2, scale2 = self.adaLN_modulation(c)
            gate1 = gate2 = 1.0
        mixed = self.run_in_own_layout(self.mixer, modulate(self.norm1(x), shift1, scale1), grid)
        x = x + self.drop_path(gate1 * mixed)
        fed = self.run_in_own_layout(self.ffn, modulate(self.norm2(x), shift2, scale2), grid)
        return x + self.drop_path(gate2 * fed)
