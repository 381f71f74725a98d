"""Token mixers. Each file holds one mixer and registers it in ``visionmix.registry.MIXERS``.

Contract (DESIGN §3): ``Mixer(dim, num_heads, *, layer_id, num_layers, **options)`` and
``forward(x: (B, N, C), hw: (H, W)) -> (B, N, C)`` with N == H*W in row-major order (mixers whose
class attribute ``accepts_extra_tokens`` is True also take extra leading tokens, N > H*W). Mixers
know nothing about time, class or diffusion; they work for any (H, W), odd and non-square included.
"""
from .attention import Attention
from .bi_rwkv import BiRWKV
from .dico_conv import DiCoConv
from .retnet import ManhattanSelfAttention
from .window_attention import WindowAttention

__all__ = ["Attention", "BiRWKV", "DiCoConv", "ManhattanSelfAttention", "WindowAttention"]
