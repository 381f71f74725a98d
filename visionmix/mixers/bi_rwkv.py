"""Bi-RWKV spatial mix (Vision-RWKV), registered as ``bi_rwkv``: a bidirectional, linear-cost mixer.

    xk, xv, xr = lerp(x, q_shift(x), mix_{k,v,r});   k, v, r = key(xk), value(xv), receptance(xr)
    y_t = (sum_{i != t} e^{-(|t-i|-1) w + k_i} v_i + e^{u + k_t} v_t) / (same with v_i = 1)   per channel
    out = output(sigmoid(r) * y),   w = spatial_decay / T,  u = spatial_first / T,  T = H*W

y is Bi-WKV (``visionmix.ops.bi_wkv``: exact, O(T), CPU and CUDA, no length limit); tokens are scanned
in row-major order and Q-shift gives each token its four grid neighbours. Shapes: x (B, H*W, C) ->
(B, H*W, C); ``num_heads`` is accepted for the mixer contract and unused. Parameter names and the
"fancy" layer-dependent init follow the official code. Papers: Duan et al., "Vision-RWKV", 2024;
Fei et al., "Diffusion-RWKV: Scaling RWKV-like Architectures for Diffusion Models", 2024.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..contract import Grid, Scheme, TokenMixer, default_scheme, scaffold_walk
from ..layers.qshift import q_shift, rwkv_mix_ratios, shift_lerp
from ..layers.rwkv_channel_mix import rwkv_token_mix_init
from ..ops import bi_wkv
from ..registry import MIXERS


@MIXERS.register_module(name="bi_rwkv")
class BiRWKV(TokenMixer):
    layout = "tokens"
    accepts_extra_tokens = False
    init_from_scaffold = True  # DiT's xavier, U-ViT's trunc-normal: the scaffold decides
    grid_reason = "its Q-shift and scan run over the grid"

    def __init__(self, dim: int, num_heads: int | None = None, *, shift_pixel: int = 1, channel_gamma: float = 0.25,
                 init_mode: str = "fancy", key_norm: bool = False, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        self.shift_pixel, self.channel_gamma = shift_pixel, channel_gamma
        self.dim, self.init_mode, self.layer_id, self.num_layers = dim, init_mode, layer_id, num_layers
        self.spatial_decay, self.spatial_first = (nn.Parameter(p) for p in self.decay_values())
        if shift_pixel > 0:
            self.spatial_mix_k, self.spatial_mix_v, self.spatial_mix_r = (nn.Parameter(p) for p in self.mix_values())
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.key_norm = nn.LayerNorm(dim) if key_norm else None
        self.output = nn.Linear(dim, dim, bias=False)

    def decay_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(spatial_decay, spatial_first) as :func:`rwkv_decay_init` sets them for this layer."""
        return rwkv_decay_init(self.dim, self.init_mode, self.layer_id, self.num_layers)

    def mix_values(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mix_k, mix_v, mix_r): the depth-dependent ramps of Diffusion-RWKV's "fancy" init."""
        mix = rwkv_token_mix_init(self.dim, self.init_mode, self.layer_id, self.num_layers)
        bump = 0.3 * rwkv_mix_ratios(self.layer_id, self.num_layers)[0] if self.init_mode == "fancy" else 0.0
        # receptance mixes with half the exponent: ramp^(r/2) = sqrt(ramp^r)
        return mix, mix + bump, (mix.sqrt() if self.init_mode == "fancy" else mix.clone())

    def init_weights(self, scheme: Scheme | None = None) -> None:
        """The decay, first-token bonus and shift ratios as the paper sets them; the projections by the scaffold's
        scheme (Diffusion-RWKV: DiT's xavier)."""
        with torch.no_grad():
            for param, value in zip((self.spatial_decay, self.spatial_first), self.decay_values()):
                param.copy_(value)
            if self.shift_pixel > 0:
                for param, value in zip((self.spatial_mix_k, self.spatial_mix_v, self.spatial_mix_r),
                                        self.mix_values()):
                    param.copy_(value)
        scaffold_walk(self, scheme or default_scheme)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        hw, length = grid.hw, x.shape[1]
        xk = xv = xr = x
        if self.shift_pixel > 0:
            shifted = q_shift(x, hw, self.shift_pixel, self.channel_gamma)
            xk = shift_lerp(x, shifted, self.spatial_mix_k)
            xv = shift_lerp(x, shifted, self.spatial_mix_v)
            xr = shift_lerp(x, shifted, self.spatial_mix_r)
        k, v, r = self.key(xk), self.value(xv), self.receptance(xr)
        y = bi_wkv(self.spatial_decay.float() / length, self.spatial_first.float() / length, k, v)
        if self.key_norm is not None:
            y = self.key_norm(y)
        return self.output(torch.sigmoid(r) * y)


def rwkv_decay_init(dim: int, init_mode: str, layer_id: int, num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(spatial_decay, spatial_first) init. "fancy": decay_c = -5 + 8 (c/(C-1))^(0.7 + 1.3 r0) rises with
    depth ratio r0, first_c = ln 0.3 + 0.5 * zigzag(c) with zigzag = 0, 0.5, -0.5, ... (RWKV-4)."""
    if init_mode == "fancy":
        depth_ratio = rwkv_mix_ratios(layer_id, num_layers)[0]
        position = torch.arange(dim, dtype=torch.float32) / max(dim - 1, 1)
        decay = -5 + 8 * position.pow(0.7 + 1.3 * depth_ratio)
        zigzag = ((torch.arange(dim) + 1) % 3 - 1).float() * 0.5
        return decay, math.log(0.3) + zigzag
    if init_mode == "local":
        return torch.ones(dim), torch.ones(dim)
    if init_mode == "global":
        return torch.zeros(dim), torch.zeros(dim)
    raise ValueError(f"unknown RWKV init_mode {init_mode!r}; choose 'fancy', 'local' or 'global'")
