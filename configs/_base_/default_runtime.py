# Runtime shared by every training config: iteration-based loop, EMA, checkpoints, sample grids.
from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, EMAHook, IterTimerHook, LoggerHook,
                            ParamSchedulerHook)
from mmengine.visualization import LocalVisBackend, Visualizer

from visionmix.engine import NaNGuardHook, RNGStateHook, SampleGridHook

default_scope = None

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=100),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=50000, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type=DistSamplerSeedHook),
)
# by name, so configs and --cfg-options address them as custom_hooks.ema...; load_config makes the Runner's list
custom_hooks = dict(
    # mmengine's momentum is 1 - decay: DiT's EMA decay 0.9999
    ema=dict(type=EMAHook, ema_type="ExponentialMovingAverage", momentum=1e-4, update_buffers=True),
    nan_guard=dict(type=NaNGuardHook),
    rng_state=dict(type=RNGStateHook),
    sample_grid=dict(type=SampleGridHook, interval=50000, per_class=8, num_classes_shown=8),
)

env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="nccl"))
log_processor = dict(by_epoch=False, window_size=100)
# training scalars (loss, lr, ...) as JSON lines in <work_dir>/<time>/vis_data/scalars.json; tools/train.py
# --tensorboard adds mmengine's TensorBoard backend beside it
visualizer = dict(type=Visualizer, vis_backends=[dict(type=LocalVisBackend)])
log_level = "INFO"
load_from = None
resume = False
# different noise on each rank (DiT: seed * world_size + rank)
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
