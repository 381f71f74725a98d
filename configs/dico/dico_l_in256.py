# DiCo-L, ImageNet 256x256 (SD-VAE latent 32x32x4): 463,897,992 parameters, 60.24 GMACs.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.dico import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(hidden_size=352, depths=[9, 8, 9, 8, 9])
