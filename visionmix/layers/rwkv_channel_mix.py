"""RWKV channel mix (Vision-RWKV / Diffusion-RWKV FFN), registered as ``rwkv_channel_mix``.

    xk, xr = lerp(x, q_shift(x), mix_k), lerp(x, q_shift(x), mix_r)
    out = sigmoid(receptance(xr)) * value(relu(key(xk))^2)        key: C -> hidden_rate*C, no biases

Shapes: x (B, H*W, C) -> (B, H*W, C). Parameter names follow the official code (``spatial_mix_k``,
``key``, ``receptance``, ``value``) so converting a checkpoint is a rename of the block prefix only.
Paper: Duan et al., "Vision-RWKV", 2024; Fei et al., "Diffusion-RWKV", 2024.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..contract import ChannelMixer, Grid, Scheme, default_scheme, scaffold_walk
from ..registry import FFNS
from .qshift import channel_ramp, q_shift, rwkv_mix_ratios, shift_lerp


@FFNS.register_module(name="rwkv_channel_mix")
class RWKVChannelMix(ChannelMixer):
    layout = "tokens"
    accepts_extra_tokens = False
    init_from_scaffold = True  # DiT's xavier, U-ViT's trunc-normal: the scaffold decides
    grid_reason = "its Q-shift reads grid neighbours"

    def __init__(self, dim: int, hidden_rate: float = 4.0, *, shift_pixel: int = 1, channel_gamma: float = 0.25,
                 init_mode: str = "fancy", key_norm: bool = False, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        self.shift_pixel, self.channel_gamma = shift_pixel, channel_gamma
        self.dim, self.init_mode, self.layer_id, self.num_layers = dim, init_mode, layer_id, num_layers
        hidden = int(hidden_rate * dim)
        if shift_pixel > 0:
            mix = rwkv_token_mix_init(dim, init_mode, layer_id, num_layers)
            self.spatial_mix_k = nn.Parameter(mix)
            self.spatial_mix_r = nn.Parameter(mix.clone())
        self.key = nn.Linear(dim, hidden, bias=False)
        self.key_norm = nn.LayerNorm(hidden) if key_norm else None
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(hidden, dim, bias=False)

    def init_weights(self, scheme: Scheme | None = None) -> None:
        """The shift ratios as the paper sets them; the projections by the scaffold's scheme."""
        if self.shift_pixel > 0:
            mix = rwkv_token_mix_init(self.dim, self.init_mode, self.layer_id, self.num_layers)
            with torch.no_grad():
                self.spatial_mix_k.copy_(mix)
                self.spatial_mix_r.copy_(mix)
        scaffold_walk(self, scheme or default_scheme)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        xk = xr = x
        if self.shift_pixel > 0:
            shifted = q_shift(x, grid.hw, self.shift_pixel, self.channel_gamma)
            xk, xr = shift_lerp(x, shifted, self.spatial_mix_k), shift_lerp(x, shifted, self.spatial_mix_r)
        k = torch.relu(self.key(xk)).square()
        if self.key_norm is not None:
            k = self.key_norm(k)
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


def rwkv_token_mix_init(dim: int, init_mode: str, layer_id: int, num_layers: int) -> torch.Tensor:
    """(1, 1, dim) token-mix init: "fancy" = ramp^(1 - layer/L) (RWKV), "local" = 1, "global" = 0.5."""
    if init_mode == "fancy":
        return channel_ramp(dim).pow(rwkv_mix_ratios(layer_id, num_layers)[1])
    if init_mode == "local":
        return torch.ones(1, 1, dim)
    if init_mode == "global":
        return torch.full((1, 1, dim), 0.5)
    raise ValueError(f"unknown RWKV init_mode {init_mode!r}; choose 'fancy', 'local' or 'global'")
