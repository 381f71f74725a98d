# Quickstart, U-shaped: a small class-conditional DiCo on sklearn's bundled 8x8 digits (8x8 -> 4x4 -> 2x2 levels),
# the same recipe as drwkv_digits8.py, so any mixer can be tried in both scaffolds on a CPU in minutes.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.digits8 import *
    from .._base_.default_runtime import *
    from .._base_.models.dico import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=8, in_channels=1, num_classes=10, hidden_size=32, depths=[2, 2, 2, 2, 2],
                      head_dim=16)
model.data_preprocessor = dict(type=DiffusionDataPreprocessor)  # pixel space: assignment, not update
model.vae = None
model.diffusion.update(noise_schedule="cosine")  # see drwkv_digits8.py: the linear schedule wastes 8x8 steps
model.sampling.update(sampler="ddpm", steps=50, cfg_scale=1.0, guided_channels=None, clip_denoised=True)

optim_wrapper.optimizer.update(lr=4e-3)
train_cfg.update(max_iters=1000)
default_hooks.checkpoint.update(interval=500, max_keep_ckpts=2)
default_hooks.logger.update(interval=100)
custom_hooks.ema.update(momentum=2e-2)  # EMA decay 0.98
custom_hooks.sample_grid.update(interval=1000, per_class=8, num_classes_shown=10)
work_dir = "work_dirs/quickstart_dico_digits8"
