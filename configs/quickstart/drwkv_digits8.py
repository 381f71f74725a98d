# Quickstart: a small class-conditional Diffusion-RWKV (1.8M parameters) on sklearn's bundled 8x8 digits, trained on
# CPU in a few minutes by `make demo`. Same scaffold as configs/drwkv/, in pixel space, patch 2 (a 4x4 token grid).
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.digits8 import *
    from .._base_.default_runtime import *
    from .._base_.models.drwkv import *
    from .._base_.schedules.adamw_400k import *

model.backbone.update(input_size=8, patch_size=2, in_channels=1, num_classes=10, hidden_size=112, depth=7,
                      num_heads=4, drop_path_rate=0.0)
model.data_preprocessor = dict(type=DiffusionDataPreprocessor)  # pixel space: assignment, not update (no latent_scale)
model.vae = None
model.sampling.update(sampler="ddim", steps=50, cfg_scale=1.0, guided_channels=None, clip_denoised=True)

optim_wrapper.optimizer.update(lr=2e-3)
train_cfg.update(max_iters=1300)
default_hooks.checkpoint.update(interval=650, max_keep_ckpts=2)
default_hooks.logger.update(interval=100)
custom_hooks[0].update(momentum=1e-2)  # EMA decay 0.99: 0.9999 would barely move in a few hundred iterations
custom_hooks[3].update(interval=1300, per_class=8, num_classes_shown=10)
work_dir = "work_dirs/quickstart_drwkv_digits8"
