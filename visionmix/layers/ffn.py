"""Channel mixers (FFNs). Same contract as token mixers: ``forward(x: (B, N, C), hw) -> (B, N, C)``."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import Mlp

from ..registry import FFNS


@FFNS.register_module(name="mlp")
class MlpFFN(Mlp):
    """Two-layer MLP ``fc2(act(fc1(x)))`` with GELU(tanh) and hidden width ``mlp_ratio * dim`` (DiT, ViT)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, *, act: str = "gelu_tanh", bias: bool = True,
                 drop: float = 0.0, layer_id: int = 0, num_layers: int = 1):
        acts = {"gelu_tanh": lambda: nn.GELU(approximate="tanh"), "gelu": nn.GELU, "silu": nn.SiLU}
        if act not in acts:
            raise ValueError(f"unknown activation {act!r}; choose one of {sorted(acts)}")
        super().__init__(dim, int(dim * mlp_ratio), act_layer=acts[act], bias=bias, drop=drop)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
        return super().forward(x)
