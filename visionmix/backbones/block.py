"""One residual block of the isotropic scaffold: norm -> (conditioning) -> token mixer, norm -> FFN."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import DropPath

from ..layers.conditioning import AdaLNModulation, check_conditioning, modulate
from ..registry import FFNS, MIXERS, ComponentCfg, build

# modulation chunks per conditioning mode: adaLN-Zero adds a gate to each residual branch
_CHUNKS = {"adaln_zero": 6, "adaln": 4, "in_context": 0}


class Block(nn.Module):
    """``x + gate1 * mixer(mod(norm1(x))) ; x + gate2 * ffn(mod(norm2(x)))`` (DiT), or its variants.

    - ``conditioning="adaln_zero"``: shift/scale/gate from the condition vector, zero-initialised (DiT).
    - ``"adaln"``: shift/scale only. ``"in_context"``: plain pre-norm block, conditioning rides in tokens.
    - ``skip=True``: U-ViT long skip, ``x = skip_linear(cat[x, skip])`` before anything else.
    - ``first_norm=True``: an extra LayerNorm ``ln0`` on the block input (Diffusion-RWKV's first block).
    """

    def __init__(self, dim: int, num_heads: int, *, mixer: ComponentCfg = "attention", ffn: ComponentCfg = "mlp",
                 conditioning: str = "adaln_zero", norm_affine: bool = False, norm_eps: float = 1e-6,
                 drop_path: float = 0.0, skip: bool = False, first_norm: bool = False,
                 layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        self.conditioning = check_conditioning(conditioning)
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.ln0 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_affine) if first_norm else None
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_affine)
        self.mixer = build(MIXERS, mixer, dim=dim, num_heads=num_heads, layer_id=layer_id, num_layers=num_layers)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_affine)
        self.ffn = build(FFNS, ffn, dim=dim, layer_id=layer_id, num_layers=num_layers)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        chunks = _CHUNKS[conditioning]
        self.adaLN_modulation = AdaLNModulation(dim, chunks) if chunks else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, hw: tuple[int, int],
                skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        if self.ln0 is not None:
            x = self.ln0(x)
        if self.conditioning == "in_context":
            x = x + self.drop_path(self.mixer(self.norm1(x), hw))
            return x + self.drop_path(self.ffn(self.norm2(x), hw))
        if self.conditioning == "adaln_zero":
            shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)
            gate1, gate2 = gate1.unsqueeze(1), gate2.unsqueeze(1)
        else:
            shift1, scale1, shift2, scale2 = self.adaLN_modulation(c)
            gate1 = gate2 = 1.0
        x = x + self.drop_path(gate1 * self.mixer(modulate(self.norm1(x), shift1, scale1), hw))
        return x + self.drop_path(gate2 * self.ffn(modulate(self.norm2(x), shift2, scale2), hw))
