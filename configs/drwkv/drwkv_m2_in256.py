# DRWKV-M/2, ImageNet 256x256 (SD-VAE latent 32x32x4): 132,623,904 parameters.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(hidden_size=512, depth=25, num_heads=8, patch_size=2)
