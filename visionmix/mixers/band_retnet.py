"""Band-modulated axial retention (BAR-Net), registered as ``band_retnet``.

    X̃ = BandMod(X) = iDCT(M ⊙ DCT(X)),   M[u, v, c] = w[band(u, v), c]    (per channel c, w init 1)
    out = MaSA_axial(X̃) = W_o (A^col_h (A^row_h Ṽ) + LePE(Ṽ)),   [Q̃, K̃, Ṽ] = X̃ W_{q,k,v} (+ b)
    A^row_h = softmax_row(Q̃'K̃'ᵀ / sqrt(d) + |c_n - c_m| log γ_h),  A^col_h likewise along columns with |r_n - r_m|

DCT / iDCT: orthonormal 2-D DCT-II and its inverse over the H×W grid of each channel (``visionmix.layers.dct``:
cached matrices, two matmuls each way); band(u, v) cuts the normalised radius sqrt((u/H)² + (v/W)²) into
``num_bands`` equal widths of [0, 1) (the last band also takes the corners). The retention is RMT's decomposed
MaSA, reused as a whole (``visionmix.mixers.retnet.ManhattanSelfAttention(decomposed=True)``: axial decay
masks from ``visionmix.layers.decay.axial_decay``, theta-shift RoPE, LePE), so with every band weight at 1 (the
init) BandMod is the identity and this mixer is exactly ``retnet:decomposed=true``.

Source and choices: the official code is not public; this follows the paper's abstract (RetNet's distance decay
along each spatial axis, plus an adaptive frequency-band modulation of the features). Ours, where the abstract
is silent: the transform is the orthonormal DCT-II (real, no FFT padding, exact on any H×W); bands are radial
with fixed equal-width edges in normalised frequency, so a band means the same frequencies at every resolution;
the modulation is a static learned per-(band, channel) gain (init 1) applied to the mixer input, so q, k, v and
LePE all see the re-weighted spectrum (rather than a separate filtered branch added to the output); γ, RoPE,
LePE and the init follow RMT (trunc-normal(.02) Linears, zero biases).

Shapes: x (B, H*W, C) -> (B, H*W, C), ``num_heads`` heads of width d = C / heads (even, for the RoPE; or
``theta_shift=False``). Needs exactly the H*W grid tokens. Precision: the band modulation runs in float32
(float64 for float64 inputs) with autocast off, so its identity init is exact; the retention keeps RMT's
float32 logits, masks and softmax. Cost: O(N (H + W) C) for the transforms, O(N (H + W) d) per head for MaSA.

Papers: Fan et al., "RMT: Retentive Networks Meet Vision Transformers", CVPR 2024; BAR-Net (band-attention
modulated RetNet), abstract only; Ahmed et al., "Discrete Cosine Transform", IEEE T-C 1974.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from ..contract import Grid, Scheme, TokenMixer
from ..layers.dct import dct_2d, idct_2d, radial_bands
from ..registry import MIXERS
from .retnet import ManhattanSelfAttention


@MIXERS.register_module(name="band_retnet")
class BandModulatedRetention(TokenMixer):
    """BAR-Net. Options: ``num_bands`` (radial DCT bands, each with a learned per-channel gain), and RMT's
    ``initial_value`` / ``heads_range`` (γ per head), ``theta_shift`` (RoPE on q, k), ``lepe_kernel_size``,
    ``qkv_bias``."""

    layout = "tokens"
    accepts_extra_tokens = False
    grid_reason = "its decay and frequency bands are functions of grid position"

    def __init__(self, dim: int, num_heads: int = 8, *, num_bands: int = 4, initial_value: float = 2.0,
                 heads_range: float = 6.0, theta_shift: bool = True, lepe_kernel_size: int = 5,
                 qkv_bias: bool = True, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"band_retnet width {dim} is not divisible by num_heads={num_heads}")
        if theta_shift and (dim // num_heads) % 2:
            raise ValueError(f"band_retnet's theta shift (RoPE) rotates channel pairs, so the head width "
                             f"{dim // num_heads} (= {dim} / {num_heads}) must be even; or set theta_shift=False")
        if not isinstance(num_bands, int) or isinstance(num_bands, bool) or num_bands < 1:
            raise ValueError(f"band_retnet num_bands must be a positive integer, got {num_bands!r}")
        self.num_bands = num_bands
        self.band_weight = nn.Parameter(torch.ones(num_bands, dim))
        self.retention = ManhattanSelfAttention(
            dim, num_heads, decomposed=True, initial_value=initial_value, heads_range=heads_range,
            theta_shift=theta_shift, lepe_kernel_size=lepe_kernel_size, qkv_bias=qkv_bias,
            layer_id=layer_id, num_layers=num_layers)
        self.init_weights()

    def init_weights(self, scheme: Scheme | None = None) -> None:
        self.retention.init_weights()
        nn.init.ones_(self.band_weight)

    def extra_repr(self) -> str:
        return f"num_bands={self.num_bands}"

    def band_modulation(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """iDCT(M ⊙ DCT(x)) per channel on the H×W grid of (B, H*W, C) tokens, in at least float32."""
        h, w = hw
        compute = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            grid = rearrange(x.to(compute), "b (h w) c -> b c h w", h=h, w=w)
            gain = self.band_weight.to(compute)[radial_bands(h, w, self.num_bands, x.device)]  # (H, W, C)
            out = idct_2d(dct_2d(grid) * gain.permute(2, 0, 1))
        return rearrange(out, "b c h w -> b (h w) c").to(x.dtype)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.retention(self.band_modulation(x, grid.hw), grid)
