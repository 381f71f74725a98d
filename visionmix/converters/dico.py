"""DiCo (Ai et al. 2025, shallowdream204/DiCo ``dico_models.py``) -> visionmix's U-shaped backbone.

The files load through DiCo's ``download.find_model``, which takes ``checkpoint["ema"]`` when present
(``train_accelerate.py`` saves ``{"model", "ema", "opt", "args"}``, ``args`` an argparse Namespace).

visionmix's U-shape keeps DiCo's module names (stem, per-level embedders, stages, down/up samplers,
channel reducers, head), so outside the blocks every key keeps its name except the adaLN projections.
Inside a ``DiCoBlock`` the conv module becomes the ``dico_conv`` token mixer and the pointwise FFN the
``mlp`` FFN:

    {stage}.{i}.{conv1,conv2,conv3,ca.1}   -> {stage}.{i}.mixer.{conv1,conv2,conv3,ca.1}
    {stage}.{i}.conv4 / conv5              -> {stage}.{i}.ffn.fc1 / fc2     (reshaped, see below)
    ...adaLN_modulation.1                  -> ...adaLN_modulation.linear

Not a pure rename: DiCo's FFN is two 1x1 convolutions with (out, in, 1, 1) kernels; visionmix's MLP
holds Linear weights (out, in) and runs them as 1x1 convolutions on grids, so conv4/conv5 kernels are
reshaped (the same numbers). Stages: encoder_level_1, encoder_level_2, latent, decoder_level_2,
decoder_level_1. DiCo-H is not released.
"""
from __future__ import annotations

from .layout import Blocks, Layout, same, squeeze_1x1, weight_bias
from .source import Release, Source

STAGES = ("encoder_level_1", "encoder_level_2", "latent", "decoder_level_2", "decoder_level_1")

BLOCK = {
    **{k: "mixer." + k for k in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight",
                                 "conv3.bias", "ca.1.weight", "ca.1.bias")},
    "conv4.weight": ("ffn.fc1.weight", squeeze_1x1),
    "conv4.bias": "ffn.fc1.bias",
    "conv5.weight": ("ffn.fc2.weight", squeeze_1x1),
    "conv5.bias": "ffn.fc2.bias",
    **weight_bias("adaLN_modulation.1", "adaLN_modulation.linear"),
}

LAYOUT = Layout(
    names={
        **same("x_embedder.proj.weight", "x_embedder.proj.bias", "down1_2.body.0.weight", "down2_3.body.0.weight",
               "up3_2.body.0.weight", "up2_1.body.0.weight", "reduce_chan_level2.weight", "reduce_chan_level2.bias",
               "reduce_chan_level1.weight", "reduce_chan_level1.bias", "final_layer.out_proj.weight",
               "final_layer.out_proj.bias"),
        **same(*(f"t_embedder_{i}.mlp.{j}.{p}" for i in (1, 2, 3) for j in (0, 2) for p in ("weight", "bias"))),
        **same(*(f"y_embedder.embedding_table_{i}.weight" for i in (0, 1, 2))),
        **weight_bias("final_layer.adaLN_modulation.1", "final_layer.adaLN_modulation.linear"),
    },
    blocks=tuple(Blocks(f"{stage}.{{i}}.", f"{stage}.{{i}}.", BLOCK) for stage in STAGES),
)

_HF = "https://huggingface.co/shallowdream204/DiCo/resolve/main/"

SOURCE = Source(
    name="dico",
    title="DiCo",
    layout=LAYOUT,
    wrappers=("ema", "model"),
    releases=(
        Release("DiCo-S 256x256 (400K iters)", _HF + "DiCo-S-400K-256x256.pt", "configs/dico/dico_s_in256.py"),
        Release("DiCo-B 256x256 (400K iters)", _HF + "DiCo-B-400K-256x256.pt", "configs/dico/dico_b_in256.py"),
        Release("DiCo-L 256x256 (400K iters)", _HF + "DiCo-L-400K-256x256.pt", "configs/dico/dico_l_in256.py"),
        Release("DiCo-XL 256x256 (400K iters)", _HF + "DiCo-XL-400K-256x256.pt", "configs/dico/dico_xl_in256.py"),
        Release("DiCo-XL 256x256 (3750K iters)", _HF + "DiCo-XL-3750K-256x256.pt", "configs/dico/dico_xl_in256.py",
                "FID 2.05 with cfg scale 1.4"),
    ),
)
