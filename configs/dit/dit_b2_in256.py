# DiT-B/2, ImageNet 256x256 (SD-VAE latent 32x32x4). Published counts: tests/test_reference_numbers.py.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.imagenet_latents256 import *
    from .._base_.default_runtime import *
    from .._base_.models.dit import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(hidden_size=768, depth=12, num_heads=12, patch_size=2)
