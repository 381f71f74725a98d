"""Reusable building blocks shared by every scaffold and mixer."""
from .conv_gated_ffn import ConvGatedFFN
from .conditioning import CONDITIONING_MODES, AdaLNModulation, modulate
from .embedders import LabelEmbedder, TimestepEmbedder, timestep_embedding
from .ffn import MlpFFN
from .head import AdaLNFinalLayer, ConvFinalLayer, LinearFinalLayer, unpatchify
from .pos_embed import PositionEmbedding, sincos_1d, sincos_2d
from .qshift import q_shift
from .rwkv_channel_mix import RWKVChannelMix

__all__ = [
    "ConvGatedFFN", "CONDITIONING_MODES", "AdaLNModulation", "modulate", "LabelEmbedder", "TimestepEmbedder",
    "timestep_embedding", "MlpFFN", "AdaLNFinalLayer", "ConvFinalLayer", "LinearFinalLayer", "unpatchify",
    "PositionEmbedding", "sincos_1d", "sincos_2d", "q_shift", "RWKVChannelMix",
]
