"""Convolutional gated FFN (LAformer's CGFN), registered in ``FFNS`` as ``conv_gated``.

    out = fc2( act(DWC_k(fc1_g(x))) ⊙ fc1_v(x) )          fc1_g, fc1_v: C -> hidden,  fc2: hidden -> C
    hidden = int(mlp_ratio · C),  mlp_ratio = 8/3 by default,  DWC_k: depthwise k×k conv (bias) on the H×W grid

Only the gate branch sees the depthwise conv (k = 3 by default), which gives the FFN the local spatial mixing the
paper's "convolutional gated feed-forward network" adds; act is GELU. Three hidden-wide matrices at ratio 8/3 hold
as many weights as the two of a ratio-4 MLP (3 · 8/3 = 2 · 4), so it swaps in for ``mlp`` at the same size, and
the ratio is that of Restormer's gated-dconv FFN (2.66). The exact LAformer hidden ratio and which branch gets the
conv are not given in its abstract: they are our choices.
Shapes: x (B, H*W, C) with ``hw`` -> (B, H*W, C) (``layout = "tokens"``: the conv needs the grid; the block
converts a grid stage's input). Init (``init_weights``): trunc-normal(.02) Linears with zero biases, PyTorch's
default conv init for DWC.

Paper: Ai et al., "Breaking Complexity Barriers: High-Resolution Image Restoration with Rank Enhanced Linear
Attention" (LAformer), arXiv:2505.16157, 2025; Zamir et al., "Restormer", CVPR 2022 (gated-dconv FFN).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..contract import ChannelMixer, Grid, Scheme
from ..registry import FFNS
from .init import vit_init_
from .lepe import DepthwiseConvPE

ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU}


@FFNS.register_module(name="conv_gated")
class ConvGatedFFN(ChannelMixer):
    """Options: ``mlp_ratio`` (hidden width / C), ``kernel_size`` (odd, of the gate's depthwise conv), ``act``
    ("gelu", "gelu_tanh", "silu"), ``bias`` (of the three Linears)."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its depthwise conv runs on the grid"

    def __init__(self, dim: int, mlp_ratio: float = 8 / 3, *, kernel_size: int = 3, act: str = "gelu",
                 bias: bool = True, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown conv_gated activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"conv_gated mlp_ratio={mlp_ratio} leaves no hidden channels for width {dim}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"conv_gated kernel_size must be an odd positive integer, got {kernel_size!r}")
        self.hidden = hidden
        self.fc1_g = nn.Linear(dim, hidden, bias=bias)
        self.fc1_v = nn.Linear(dim, hidden, bias=bias)
        self.dwconv = DepthwiseConvPE(hidden, kernel_size)
        self.act = ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        vit_init_(self)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}"

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1_g(x), grid.hw)) * self.fc1_v(x))
