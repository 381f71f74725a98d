"""Large-kernel convolutional modulation, CFSR's ConvFormer token mixer, registered as ``conv_mixer``.

    a   = dw_k×k(GELU(W_a x))                  W_a: 1×1 conv, dw: depthwise k×k conv (k = 9 in CFSR)
    out = W_p (a ⊙ W_v x)                      W_v, W_p: 1×1 convs; ⊙: elementwise product

The large-kernel depthwise conv stands in for self-attention: ``a`` plays the attention map, computed by a
convolution over a k×k neighbourhood, and modulates the value ``W_v x`` (Conv2Former's convolutional
modulation, which CFSR adopts as its "ConvFormer" layer). No expansion: every conv keeps the width C.
Computes in the grid layout: x (B, C, H, W) -> (B, C, H, W) (``layout = "grid"``); any H×W (same padding;
the receptive field of one mixer is k×k, so a grid smaller than k sees a zero-padded neighbourhood).

Left to the scaffold or dropped: CFSR's pre-norm (the block's norm), and its training-time re-parameterised
3×3 / Sobel / Laplacian branches beside the k×k kernel: they are depthwise linear maps summed with it, which
CFSR merges into the one k×k kernel for inference, so the function class is the same. Parameter names follow
the official code (a.0, a.2, v, proj; a.2 is CFSR's merged ``a.2.lkb_reparam``). Init as ConvNeXt /
Conv2Former: trunc-normal(0.02) weights, zero biases.
Paper: Wu et al., "Transforming Image Super-Resolution: A ConvFormer-based Efficient Approach", TIP 2024;
the modulation: Hou et al., "Conv2Former: A Simple Transformer-Style ConvNet for Visual Recognition", 2022.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from ..contract import Grid, Scheme, TokenMixer
from ..layers.conv import depthwise_conv
from ..registry import MIXERS


@MIXERS.register_module(name="conv_mixer")
class ConvMixer(TokenMixer):
    layout = "grid"
    accepts_extra_tokens = False

    def __init__(self, dim: int, num_heads: int | None = None, *, kernel_size: int = 9, layer_id: int = 0,
                 num_layers: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.a = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GELU(),
                               depthwise_conv(dim, kernel_size, owner="conv_mixer", min_size=3))
        self.v = nn.Conv2d(dim, dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.proj(self.a(x) * self.v(x))
