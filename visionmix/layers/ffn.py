"""The MLP channel mixer (FFN) of DiT / ViT; every FFN obeys :class:`visionmix.contract.ChannelMixer`."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp

from ..contract import ChannelMixer, Grid, Scheme, default_scheme, scaffold_walk
from ..registry import FFNS


@FFNS.register_module(name="mlp")
class MlpFFN(ChannelMixer, Mlp):
    """Two-layer MLP ``fc2(act(fc1(x)))`` with GELU(tanh) and hidden width ``mlp_ratio * dim`` (DiT, ViT).

    Pointwise, so it takes either layout (``layout = "any"``): on a (B, C, H, W) grid the two linears
    run as 1×1 convolutions with the same weights (DiCo's FFN is this with ``act="gelu"``).
    """

    layout = "any"
    init_from_scaffold = True  # DiT's xavier, U-ViT's trunc-normal: the scaffold decides

    def __init__(self, dim: int, mlp_ratio: float = 4.0, *, act: str = "gelu_tanh", bias: bool = True,
                 drop: float = 0.0, layer_id: int = 0, num_layers: int = 1):
        acts = {"gelu_tanh": lambda: nn.GELU(approximate="tanh"), "gelu": nn.GELU, "silu": nn.SiLU}
        if act not in acts:
            raise ValueError(f"unknown activation {act!r}; choose one of {sorted(acts)}")
        super().__init__(dim, int(dim * mlp_ratio), act_layer=acts[act], bias=bias, drop=drop)

    def init_weights(self, scheme: Scheme | None = None) -> None:
        """The scaffold's scheme (DiT: xavier; U-ViT: trunc-normal 0.02; DiCo: xavier on the 1x1 convs)."""
        scaffold_walk(self, scheme or default_scheme)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        if x.ndim == 3:
            return Mlp.forward(self, x)
        x = self.drop1(self.act(F.conv2d(x, self.fc1.weight[:, :, None, None], self.fc1.bias)))
        return self.drop2(F.conv2d(self.norm(x), self.fc2.weight[:, :, None, None], self.fc2.bias))
