# Diffusion-RWKV (Fei et al. 2024): Bi-RWKV spatial mix + RWKV channel mix in a U-ViT long-skip scaffold
# with DiT's adaLN-Zero, on 32x32x4 SD-VAE latents of ImageNet-256. Sizes: configs/drwkv/drwkv_{size}{patch}_*.py
from visionmix.backbones import IsotropicBackbone
from visionmix.layers import RWKVChannelMix
from visionmix.mixers import BiRWKV
from visionmix.diffusion import GaussianDiffusion
from visionmix.models import DiffusionDataPreprocessor, DiffusionModel

default_scope = None

model = dict(
    type=DiffusionModel,
    data_preprocessor=dict(type=DiffusionDataPreprocessor, latent_scale=0.18215),  # SD-VAE latents
    vae="data/sd-vae-ft-ema",  # local diffusers AutoencoderKL, only to decode sample grids
    diffusion=dict(type=GaussianDiffusion, num_timesteps=1000, noise_schedule="linear"),
    sampling=dict(sampler="ddpm", steps=250, cfg_scale=1.5, guided_channels=3),
    backbone=dict(
        type=IsotropicBackbone,
        input_size=32,
        patch_size=2,
        in_channels=4,
        hidden_size=384,
        depth=25,  # depth // 2 in-blocks, 1 mid block, depth // 2 out-blocks
        num_heads=6,  # unused by bi_rwkv; read by head-based mixers swapped in
        mixer=dict(type=BiRWKV, shift_pixel=1, channel_gamma=0.25, init_mode="fancy"),
        ffn=dict(type=RWKVChannelMix, hidden_rate=4, shift_pixel=1, channel_gamma=0.25, init_mode="fancy"),
        conditioning="adaln_zero",
        skip="long",
        num_classes=1000,
        class_dropout_prob=0.1,
        learn_sigma=True,
        pos_embed="sincos",  # trainable, initialised to 2-D sin-cos
        norm_affine=True,
        norm_eps=1e-5,
        first_norm=True,  # ln0 on the first block's input
        final_norm=True,  # norm_f before the adaLN head
        drop_path_rate=0.1,
        init_style="dit",
    ),
)
