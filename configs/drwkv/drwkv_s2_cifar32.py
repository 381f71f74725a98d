# DRWKV-S/2 on CIFAR-10 pixels (32x32x3), class-conditional (10 classes).
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.cifar10 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=32, in_channels=3, num_classes=10, hidden_size=384, depth=13, num_heads=6,
                      patch_size=2)
model.data_preprocessor = dict(type=DiffusionDataPreprocessor)  # pixel space: assignment, not update (no latent_scale)
model.vae = None
model.sampling.update(guided_channels=None, clip_denoised=True)
