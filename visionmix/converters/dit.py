"""DiT (Peebles & Xie 2023, facebookresearch/DiT ``models.py``) -> visionmix's isotropic backbone.

Released files (``download.py``) are plain state dicts; ``train.py`` checkpoints wrap them as
``{"model", "ema", "opt", "args"}`` and the samplers read ``"ema"``.

Official keys -> visionmix (everything is a rename):

    x_embedder.proj, t_embedder.mlp.{0,2}, y_embedder.embedding_table, final_layer.linear    (same names)
    pos_embed                                  -> pos_embed.pos_embed
    blocks.{i}.attn.{qkv,proj}                 -> blocks.{i}.mixer.{qkv,proj}      (timm Attention, fused qkv)
    blocks.{i}.mlp.{fc1,fc2}                   -> blocks.{i}.ffn.{fc1,fc2}          (timm Mlp, GELU-tanh)
    {blocks.{i},final_layer}.adaLN_modulation.1 -> ....adaLN_modulation.linear     (SiLU has no weights)

``pos_embed`` is DiT's frozen 2-D sin-cos table, a ``requires_grad=False`` parameter, so the file stores
it and it is copied as stored (visionmix's frozen table is the same parameter). The norms have no affine
weights (nothing to convert); the label table has ``num_classes + 1`` rows, the last being the null
label of classifier-free guidance. learn_sigma models (all releases) predict 2 x 4 channels.
"""
from __future__ import annotations

from .layout import Blocks, Layout, same, weight_bias
from .source import Release, Source

BLOCK = {
    **weight_bias("attn.qkv", "mixer.qkv"),
    **weight_bias("attn.proj", "mixer.proj"),
    **weight_bias("mlp.fc1", "ffn.fc1"),
    **weight_bias("mlp.fc2", "ffn.fc2"),
    **weight_bias("adaLN_modulation.1", "adaLN_modulation.linear"),
}

LAYOUT = Layout(
    names={
        **same("x_embedder.proj.weight", "x_embedder.proj.bias", "t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias",
               "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias", "y_embedder.embedding_table.weight",
               "final_layer.linear.weight", "final_layer.linear.bias"),
        "pos_embed": "pos_embed.pos_embed",
        **weight_bias("final_layer.adaLN_modulation.1", "final_layer.adaLN_modulation.linear"),
    },
    blocks=(Blocks("blocks.{i}.", "blocks.{i}.", BLOCK),),
)

SOURCE = Source(
    name="dit",
    title="DiT",
    layout=LAYOUT,
    wrappers=("ema", "model"),
    releases=(
        Release("DiT-XL/2 256x256", "https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt",
                "configs/dit/dit_xl2_in256.py"),
        Release("DiT-XL/2 512x512", "https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-512x512.pt",
                "configs/dit/dit_xl2_in512.py"),
    ),
)
