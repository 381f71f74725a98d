"""Token mixers: one file each, each a :class:`visionmix.contract.TokenMixer` registered in
``visionmix.registry.MIXERS`` (registration checks the contract).

``Mixer(dim, num_heads, *, layer_id, num_layers, **options)``; ``forward(x, grid)`` returns the shape it was given
(``grid``: a :class:`~visionmix.contract.Grid`, or an (H, W) tuple). ``layout = "tokens"`` mixers take (B, N, C) with
N == H*W in row-major order (those with ``accepts_extra_tokens = True`` also take condition tokens in front);
``layout = "grid"`` mixers take (B, C, H, W). A mixer initialises every parameter it owns (``init_weights``), knows
nothing about time, class or diffusion, and works for any (H, W), odd and non-square included.
"""
from .attention import Attention
from .band_retnet import BandModulatedRetention
from .bi_rwkv import BiRWKV
from .cluster_attention import ClusterAttention
from .conv_mixer import ConvMixer
from .dico_conv import DiCoConv
from .laformer import LAformerAttention
from .linear_attention import LinearAttention
from .rala import RankAugmentedLinearAttention
from .retnet import ManhattanSelfAttention
from .sparse_scan_attention import SparseScanAttention
from .window_attention import WindowAttention

__all__ = ["Attention", "BandModulatedRetention", "BiRWKV", "ClusterAttention", "ConvMixer", "DiCoConv",
           "LAformerAttention", "LinearAttention", "ManhattanSelfAttention", "RankAugmentedLinearAttention",
           "SparseScanAttention", "WindowAttention"]
