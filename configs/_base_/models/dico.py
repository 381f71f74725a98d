# DiCo (Ai et al. 2025): a 3-level U-shaped ConvNet denoiser (conv module + GELU MLP of ratio 2, adaLN-Zero)
# on 32x32x4 SD-VAE latents of ImageNet-256, trained like DiT. Sizes: configs/dico/dico_{size}_in{res}.py
from visionmix.backbones import UNetBackbone
from visionmix.layers import MlpFFN
from visionmix.mixers import DiCoConv
from visionmix.diffusion import GaussianDiffusion
from visionmix.models import DiffusionDataPreprocessor, DiffusionModel

default_scope = None

model = dict(
    type=DiffusionModel,
    data_preprocessor=dict(type=DiffusionDataPreprocessor, latent_scale=0.18215),  # SD-VAE latents
    vae="data/sd-vae-ft-ema",  # local diffusers AutoencoderKL, only to decode sample grids
    diffusion=dict(type=GaussianDiffusion, num_timesteps=1000, noise_schedule="linear"),
    sampling=dict(sampler="ddpm", steps=250, cfg_scale=1.5, guided_channels=3),  # DiCo guides 3 channels, as DiT
    backbone=dict(
        type=UNetBackbone,
        input_size=32,
        in_channels=4,
        hidden_size=128,
        depths=[5, 4, 4, 4, 4],  # encoder 1, encoder 2, latent, decoder 2, decoder 1
        mixer=dict(type=DiCoConv, kernel_size=3),
        ffn=dict(type=MlpFFN, mlp_ratio=2.0, act="gelu"),
        head_dim=32,  # heads per level for attention-like mixers swapped in (4 / 8 / 16 at DiCo-S widths)
        conditioning="adaln_zero",
        num_classes=1000,
        class_dropout_prob=0.1,
        learn_sigma=True,
    ),
)
