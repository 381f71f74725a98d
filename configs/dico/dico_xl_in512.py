# DiCo-XL, ImageNet 512x512 (SD-VAE latent 64x64x4): 701,151,368 parameters, 349.78 GMACs.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents512 import *
    from .._base_.default_runtime import *
    from .._base_.models.dico import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=64, hidden_size=416, depths=[9, 9, 10, 9, 9])
