# U-ViT (Bao et al. 2023): every input is a token. [label, time, patches] with a learned position table,
# pre-norm transformer blocks joined by long skips, LayerNorm + linear head predicting noise only.
from visionmix.backbones import IsotropicBackbone
from visionmix.layers import MlpFFN
from visionmix.mixers import Attention
from visionmix.diffusion import GaussianDiffusion
from visionmix.models import DiffusionDataPreprocessor, DiffusionModel

default_scope = None

model = dict(
    type=DiffusionModel,
    data_preprocessor=dict(type=DiffusionDataPreprocessor, latent_scale=0.18215),  # SD-VAE latents
    vae="data/sd-vae-ft-ema",  # local diffusers AutoencoderKL, only to decode sample grids
    diffusion=dict(type=GaussianDiffusion, num_timesteps=1000, noise_schedule="linear"),
    sampling=dict(sampler="ddim", steps=50, cfg_scale=1.0, guided_channels=None),
    backbone=dict(
        type=IsotropicBackbone,
        input_size=32,
        patch_size=2,
        in_channels=4,
        hidden_size=1152,
        depth=28,  # long skips: depth // 2 in-blocks + 1 mid block + depth // 2 out-blocks = 29 blocks
        num_heads=16,
        mixer=dict(type=Attention, qkv_bias=False),
        ffn=dict(type=MlpFFN, mlp_ratio=4.0, act="gelu"),
        conditioning="in_context",
        skip="long",
        num_classes=1000,
        class_dropout_prob=0.1,
        learn_sigma=False,
        pos_embed="learned",
        time_embed_mlp=False,
        norm_affine=True,
        norm_eps=1e-5,
        init_style="vit",
    ),
)
