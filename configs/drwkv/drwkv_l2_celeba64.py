# DRWKV-L/2 on CelebA 64x64 pixels, unconditional (the paper's CelebA setting).
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.celeba64 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=64, in_channels=3, num_classes=0, hidden_size=768, depth=37, num_heads=12,
                      patch_size=2)
model.data_preprocessor = dict(type=DiffusionDataPreprocessor)  # pixel space: assignment, not update (no latent_scale)
model.vae = None
model.sampling.update(guided_channels=None, clip_denoised=True)
