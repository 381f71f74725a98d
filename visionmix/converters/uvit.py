"""U-ViT (Bao et al. 2023, baofff/U-ViT ``libs/uvit.py``) -> visionmix's isotropic backbone (in-context, long skips).

Released files (``imagenet256_uvit_huge.pth`` ...) are the plain state dict of the network (``nnet``);
the training code saves ``nnet.pth`` and ``nnet_ema.pth`` side by side, so a dict bundling them is
unwrapped to ``nnet_ema`` first.

    patch_embed.proj                     -> x_embedder.proj
    label_emb                            -> y_embedder.embedding_table   (num_classes + 1 rows: 1001 = 1000 + null)
    pos_embed                            -> pos_embed.pos_embed          ((1, 2 + H*W, D): label, time, patches)
    {in_blocks.{i},mid_block,out_blocks.{i}}.attn.{qkv,proj} -> ....mixer.{qkv,proj}
    ....mlp.{fc1,fc2}                    -> ....ffn.{fc1,fc2}             (exact GELU)
    ....norm1 / norm2 / skip_linear      (same names)
    norm / decoder_pred                  -> final_layer.norm / final_layer.linear

Everything is a rename. The time token is U-ViT's raw D-dim sinusoid (``mlp_time_embed=False``): no
weights. ``attn.qkv.bias`` exists only with ``qkv_bias=True`` (the released models use False), the label
table only for class-conditional models. Two U-ViT options have no visionmix part and are refused:
``mlp_time_embed=True`` (``time_embed.*``) and ``conv=True`` (``final_layer.*``, a 3x3 conv after
unpatchify, used by the pixel-space CIFAR-10 / CelebA / ImageNet-64 models).

Weights only; the rest is the config's: U-ViT-H/2 on ImageNet 256 was trained on Stable Diffusion's
scaled-linear betas (sqrt-linear 0.00085..0.012) with the network called at n = 1..1000 for
alpha_bar_n = prod_{s<=n}, i.e. visionmix's t + 1 (``train_ldm_discrete.py``), and its cfg scale 0.4 is
visionmix's 1.4 applied to every channel: ``configs/uvit/uvit_h2_in256.py`` sets
``noise_schedule="scaled_linear"``, ``timestep_offset=1`` and ``cfg_scale=1.4``.
"""
from __future__ import annotations

from .layout import Blocks, Layout, prefixed, weight_bias
from .source import Release, Source

BLOCK = {
    **weight_bias("norm1", "norm1"),
    **weight_bias("attn.qkv", "mixer.qkv"),
    **weight_bias("attn.proj", "mixer.proj"),
    **weight_bias("norm2", "norm2"),
    **weight_bias("mlp.fc1", "ffn.fc1"),
    **weight_bias("mlp.fc2", "ffn.fc2"),
}

LAYOUT = Layout(
    names={
        **weight_bias("patch_embed.proj", "x_embedder.proj"),
        "label_emb.weight": "y_embedder.embedding_table.weight",
        "pos_embed": "pos_embed.pos_embed",
        **prefixed(BLOCK, "mid_block.", "mid_block."),
        **weight_bias("norm", "final_layer.norm"),
        **weight_bias("decoder_pred", "final_layer.linear"),
    },
    blocks=(
        Blocks("in_blocks.{i}.", "in_blocks.{i}.", BLOCK, optional=frozenset({"attn.qkv.bias"})),
        Blocks("out_blocks.{i}.", "out_blocks.{i}.", {**BLOCK, **weight_bias("skip_linear", "skip_linear")},
               optional=frozenset({"attn.qkv.bias"})),
    ),
    optional=frozenset({"label_emb.weight", "mid_block.attn.qkv.bias"}),
    unsupported={
        r"time_embed\.[02]\.(weight|bias)": (
            "U-ViT's mlp_time_embed=True time MLP (D -> 4D -> D on a D-dim sinusoid) has no visionmix counterpart "
            "(visionmix's time MLP reads 256 frequencies); only mlp_time_embed=False models convert"),
        r"final_layer\.(weight|bias)": (
            "U-ViT's conv=True output convolution (3x3 after unpatchify, its pixel-space models) has no visionmix "
            "counterpart; only conv=False models (the latent ImageNet ones) convert"),
    },
)

SOURCE = Source(
    name="uvit",
    title="U-ViT",
    layout=LAYOUT,
    wrappers=("nnet_ema", "nnet", "ema", "model"),
    releases=(
        Release("U-ViT-H/2 ImageNet 256x256 (imagenet256_uvit_huge.pth)",
                "https://drive.google.com/uc?export=download&id=13StUdrjaaSXjfqqF7M47BzPyhMAArQ4u",
                "configs/uvit/uvit_h2_in256.py",
                "the config samples it as trained: scaled-linear betas, steps 1..1000, cfg 1.4 on every channel"),
    ),
)
