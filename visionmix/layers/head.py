"""Output heads: DiT's adaLN final layer, U-ViT's norm + linear, DiCo's adaLN + 3×3 conv, and unpatchify."""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from timm.layers import LayerNorm2d

from .conditioning import AdaLNModulation, modulate


def unpatchify(x: torch.Tensor, grid_hw: tuple[int, int], patch_size: int) -> torch.Tensor:
    """(B, H*W, p*p*C) patch tokens -> (B, C, H*p, W*p) image (DiT's (p, q, c) channel order)."""
    return rearrange(x, "b (h w) (p q c) -> b c (h p) (w q)", h=grid_hw[0], w=grid_hw[1], p=patch_size, q=patch_size)


class AdaLNFinalLayer(nn.Module):
    """LayerNorm (no affine, eps 1e-6) modulated by the condition, then Linear(D, p*p*C_out); zero-initialised."""

    def __init__(self, dim: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = AdaLNModulation(dim, 2)

    def init_weights(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.adaLN_modulation.init_weights()

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class LinearFinalLayer(nn.Module):
    """Affine LayerNorm then Linear(D, p*p*C_out): U-ViT's ``norm`` + ``decoder_pred`` (conditioning is in-context)."""

    def __init__(self, dim: int, patch_size: int, out_channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.norm(x))


class ConvFinalLayer(nn.Module):
    """DiCo's head on a (B, D, H, W) grid: LayerNorm2d (no affine, eps 1e-6) modulated by the condition,
    then a 3×3 conv to C_out channels; zero-initialised, so a fresh model predicts exactly 0."""

    def __init__(self, dim: int, out_channels: int):
        super().__init__()
        self.norm_final = LayerNorm2d(dim, eps=1e-6, affine=False)
        self.out_proj = nn.Conv2d(dim, out_channels, 3, padding=1)
        self.adaLN_modulation = AdaLNModulation(dim, 2)

    def init_weights(self) -> None:
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        self.adaLN_modulation.init_weights()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c)
        return self.out_proj(modulate(self.norm_final(x), shift, scale))
