# DRWKV-H/2, ImageNet 512x512 (SD-VAE latent 64x64x4, T = 1024 tokens).
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents512 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=64, hidden_size=1024, depth=37, num_heads=16, patch_size=2)
