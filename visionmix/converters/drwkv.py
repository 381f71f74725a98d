"""Diffusion-RWKV (Fei et al. 2024, feizc/Diffusion-RWKV ``models_drwkv.py``) -> visionmix's isotropic backbone.

The files are whole training pickles: ``train.py`` saves ``{"model", "ema", "opt", "args"}`` with
``args`` an ``argparse.Namespace``, and ``sample.py`` loads ``checkpoint["ema"]``. A Namespace is not a
tensor, so ``torch.load(weights_only=True)`` refuses the file unless that one class is allowed:
:func:`visionmix.converters.load_official` does exactly that.

    patch_embed.proj                   -> x_embedder.proj
    time_embed.mlp.{0,2}               -> t_embedder.mlp.{0,2}
    label_emb.embedding_table          -> y_embedder.embedding_table      (absent when unconditional)
    pos_embed                          -> pos_embed.pos_embed              (trainable, sin-cos initialised)
    {in_blocks.{i},mid_block,out_blocks.{i}}.ln1 / ln2 -> ....norm1 / norm2
    ....att.*  (Bi-RWKV spatial mix)   -> ....mixer.*                      (spatial_decay, spatial_first,
    ....ffn.*  (RWKV channel mix)      -> ....ffn.*                         spatial_mix_*, key, value, ...)
    ....adaLN_modulation.1             -> ....adaLN_modulation.linear
    in_blocks.0.ln0, out_blocks.{i}.skip_linear, norm_f, final_layer.linear   (same names)
    final_layer.adaLN_modulation.1     -> final_layer.adaLN_modulation.linear

Everything is a rename: visionmix's ``bi_rwkv`` mixer and ``rwkv_channel_mix`` FFN keep the official
parameter names and shapes (spatial_mix_* are (1, 1, C)). ``key_norm`` LayerNorms exist only in models
built with ``key_norm=True`` (then set the mixer's and FFN's ``key_norm=True`` in the config).

Released checkpoints: the README links huggingface.co/feizhengcong/Diffusion-RWKV, which holds one file,
``M-2-uncond-32.pt`` (uploaded as ``l-2-uncond.pt``, then renamed; 7.03 GB). Its size says which model it is:
a training pickle stores model + EMA + AdamW's two moments, 16 bytes per parameter, and 7.03 GB is
DRWKV-L/2 unconditional at 64x64 pixels (439,163,928 parameters: 7.027 GB; at 32x32 it would be 7.017 GB,
and an M/2 at 32x32, 132,105,240 parameters, 2.11 GB), the CelebA-64 setting of the official
``script/train_celeba_middle.sh`` and of the upload's first name. An earlier README also listed B/2 32x32
and H/2 256 / 512 checkpoints that were never uploaded.
"""
from __future__ import annotations

from .layout import Blocks, Layout, prefixed, same, weight_bias
from .source import Release, Source

SPATIAL_MIX = ("spatial_decay", "spatial_first", "spatial_mix_k", "spatial_mix_v", "spatial_mix_r", "key.weight",
               "value.weight", "receptance.weight", "output.weight")
CHANNEL_MIX = ("spatial_mix_k", "spatial_mix_r", "key.weight", "receptance.weight", "value.weight")

BLOCK = {
    **weight_bias("ln1", "norm1"),
    **weight_bias("ln2", "norm2"),
    **{f"att.{k}": f"mixer.{k}" for k in SPATIAL_MIX},
    **weight_bias("att.key_norm", "mixer.key_norm"),
    **{f"ffn.{k}": f"ffn.{k}" for k in CHANNEL_MIX},
    **weight_bias("ffn.key_norm", "ffn.key_norm"),
    **weight_bias("adaLN_modulation.1", "adaLN_modulation.linear"),
}
KEY_NORMS = frozenset(k for k in BLOCK if ".key_norm." in k)

LAYOUT = Layout(
    names={
        **weight_bias("patch_embed.proj", "x_embedder.proj"),
        **weight_bias("time_embed.mlp.0", "t_embedder.mlp.0"),
        **weight_bias("time_embed.mlp.2", "t_embedder.mlp.2"),
        "label_emb.embedding_table.weight": "y_embedder.embedding_table.weight",
        "pos_embed": "pos_embed.pos_embed",
        **same("in_blocks.0.ln0.weight", "in_blocks.0.ln0.bias", "norm_f.weight", "norm_f.bias",
               "final_layer.linear.weight", "final_layer.linear.bias"),
        **prefixed(BLOCK, "mid_block.", "mid_block."),
        **weight_bias("final_layer.adaLN_modulation.1", "final_layer.adaLN_modulation.linear"),
    },
    blocks=(
        Blocks("in_blocks.{i}.", "in_blocks.{i}.", BLOCK, optional=KEY_NORMS),
        Blocks("out_blocks.{i}.", "out_blocks.{i}.", {**BLOCK, **weight_bias("skip_linear", "skip_linear")},
               optional=KEY_NORMS),
    ),
    optional=frozenset({"label_emb.embedding_table.weight"} | {"mid_block." + k for k in KEY_NORMS}),
)

_HF = "https://huggingface.co/feizhengcong/Diffusion-RWKV/resolve/main/"

SOURCE = Source(
    name="drwkv",
    title="Diffusion-RWKV",
    layout=LAYOUT,
    wrappers=("ema", "model"),
    releases=(
        Release("DRWKV-L/2 64x64 pixels, unconditional (CelebA)", _HF + "M-2-uncond-32.pt",
                "configs/drwkv/drwkv_l2_celeba64.py",
                "named M-2-uncond-32 but 7.03 GB: L/2 at 64x64 by its size (see the module docstring)"),
    ),
)
