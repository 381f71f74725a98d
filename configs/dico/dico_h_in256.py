# DiCo-H, ImageNet 256x256 (SD-VAE latent 32x32x4): 1,037,408,328 parameters, 194.15 GMACs.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.dico import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(hidden_size=416, depths=[14, 12, 10, 12, 14])
model.backbone.ffn.update(mlp_ratio=4.0)
