# SiT-XL/2 (Ma et al. 2024), ImageNet 256x256 (SD-VAE latent 32x32x4): DiT-XL/2's network trained with flow
# matching (velocity on the linear path, t in [0, 1]). The released model learns sigma as DiT does (8 output
# channels); FlowMatching reads the first 4 as the velocity, as SiT's forward does. Convert the released file with
# `python tools/convert.py sit SiT-XL-2-256x256.pt OUT.pt --config configs/sit/sit_xl2_in256.py`.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.dit import *
    from .._base_.schedules.adamw_400k import *

from visionmix.diffusion import FlowMatching

model.backbone.update(hidden_size=1152, depth=28, num_heads=16, patch_size=2)
model.diffusion = dict(type=FlowMatching, train_eps=0.0)  # assignment: GaussianDiffusion's options do not carry over
# SiT's FID-50K setting: Euler-Maruyama SDE, 250 steps, guidance 1.5 on 3 of the 4 latent channels
model.sampling = dict(sampler="sde", steps=250, cfg_scale=1.5, guided_channels=3)
