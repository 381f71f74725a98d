# DiCo-S, ImageNet 256x256 (SD-VAE latent 32x32x4): 33,137,672 parameters, 4.25 GMACs.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.dico import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(hidden_size=128, depths=[5, 4, 4, 4, 4])
