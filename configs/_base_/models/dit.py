# DiT (Peebles & Xie 2023): adaLN-Zero transformer on 32x32x4 SD-VAE latents of ImageNet-256.
# Sizes come from the configs/dit/dit_{size}{patch}_in{res}.py files that read this base.
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
    sampling=dict(sampler="ddpm", steps=250, cfg_scale=1.5, guided_channels=3),  # DiT guides 3 of 4 latent channels
    backbone=dict(
        type=IsotropicBackbone,
        input_size=32,
        patch_size=2,
        in_channels=4,
        hidden_size=1152,
        depth=28,
        num_heads=16,
        mixer=dict(type=Attention, qkv_bias=True),
        ffn=dict(type=MlpFFN, mlp_ratio=4.0),
        conditioning="adaln_zero",
        skip="none",
        num_classes=1000,
        class_dropout_prob=0.1,
        learn_sigma=True,
        pos_embed="sincos_frozen",
        norm_affine=False,
        norm_eps=1e-6,
        init_style="dit",
    ),
)
