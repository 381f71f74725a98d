# DRWKV-B/2 on 32x32 pixels (3 channels), unconditional: the official train.py's default setting (CIFAR-10 pixels,
# --task-type uncond) and the "DRWKV-B/2 32x32" row of an earlier official README. Official checkpoints of this
# setting (other widths via cfg_options) convert with `python tools/convert.py drwkv CKPT OUT.pt --config THIS`.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.cifar10 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=32, in_channels=3, num_classes=0, hidden_size=384, depth=25, num_heads=6,
                      patch_size=2)
model.data_preprocessor = dict(type=DiffusionDataPreprocessor)  # pixel space: assignment, not update (no latent_scale)
model.vae = None
model.sampling.update(guided_channels=None, clip_denoised=True)
