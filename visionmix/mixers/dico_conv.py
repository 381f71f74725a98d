"""DiCo's compact conv module, registered as ``dico_conv``: a token mixer made of convolutions.

    y   = GELU(dw_k×k(W_1 x))                  W_1: 1×1 conv, dw: depthwise k×k conv (k = 3 in DiCo)
    CCA = y ⊙ sigmoid(W_ca · GAP(y))           compact channel attention: per-channel gate from the global mean
    out = W_3 · CCA                            W_3: 1×1 conv

Computes in the grid layout: x (B, C, H, W) -> (B, C, H, W) (``layout = "grid"``; token scaffolds convert
around it). Any H×W (same padding). Parameter names follow the official code (conv1, conv2, ca.1, conv3),
so a checkpoint converts by renaming; init is DiCo's: xavier-uniform weights, zero biases.
Paper: Ai et al., "DiCo: Revitalizing ConvNets for Scalable and Efficient Diffusion Modeling", 2025.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import Grid, Scheme, TokenMixer
from ..layers.conv import depthwise_conv
from ..layers.init import xavier_init_
from ..registry import MIXERS


@MIXERS.register_module(name="dico_conv")
class DiCoConv(TokenMixer):
    layout = "grid"
    accepts_extra_tokens = False

    def __init__(self, dim: int, num_heads: int | None = None, *, kernel_size: int = 3, layer_id: int = 0,
                 num_layers: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = depthwise_conv(dim, kernel_size, owner="dico_conv")
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim, 1), nn.Sigmoid())
        self.conv3 = nn.Conv2d(dim, dim, 1)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        xavier_init_(self)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        y = F.gelu(self.conv2(self.conv1(x)))
        return self.conv3(y * self.ca(y))
