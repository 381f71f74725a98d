"""Write a PNG grid of (EMA) samples every N iterations, so progress can be seen, not just read: one row per
class, upscaled to at least 256 pixels a side (``visionmix.visualization.save_grid``)."""
from __future__ import annotations

import os.path as osp

import torch
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...visualization import save_grid


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Every ``interval`` iterations and at the end, rank 0 samples ``num_classes_shown`` classes x
    ``per_class`` images with the EMA weights (when an EMAHook is present) and writes
    ``<work_dir>/samples/iter_<n>.png``. The same fixed generator seed each time makes grids comparable.

    ``sampling`` overrides the model's sampling defaults (e.g. ``dict(sampler="ddim", steps=50)``).
    """

    priority = "LOW"

    def __init__(self, interval: int = 1000, per_class: int = 8, num_classes_shown: int = 10, seed: int = 0,
                 sampling: dict | None = None):
        self.interval, self.per_class, self.num_classes_shown = interval, per_class, num_classes_shown
        self.seed, self.sampling = seed, dict(sampling or {})
        self.disabled_because: str | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.write_grid(runner, runner.iter + 1)  # runner.iter counts the iterations finished before this one

    def after_train(self, runner) -> None:
        if runner.iter % self.interval:
            self.write_grid(runner, runner.iter)

    def labels(self, model) -> torch.Tensor:
        if not model.conditional:
            return torch.full((self.per_class * self.num_classes_shown,), -1, dtype=torch.long)
        classes = torch.arange(min(self.num_classes_shown, model.backbone.num_classes))
        return classes.repeat_interleave(self.per_class)

    def write_grid(self, runner, iteration: int) -> str | None:
        """Sample the grid and write ``samples/iter_<iteration>.png``; returns its path (None off rank 0)."""
        if runner.rank != 0 or self.disabled_because:
            return None
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        ema = next((h for h in runner.hooks if isinstance(h, EMAHook) and hasattr(h, "ema_model")), None)
        backbone = ema.ema_model.module.backbone if ema is not None else model.backbone
        device = next(backbone.parameters()).device
        generator = torch.Generator(device).manual_seed(self.seed)
        try:
            model.decoder()  # before sampling: latents need a local VAE to become pictures
        except (FileNotFoundError, ValueError) as err:  # no VAE here: keep training, say why once
            self.disabled_because = str(err)
            runner.logger.warning(f"sample grids are off: {err}")
            return None
        images = model.sample(self.labels(model), generator=generator, backbone=backbone, **self.sampling)
        path = osp.join(runner.work_dir, "samples", f"iter_{iteration:07d}.png")
        labels = self.labels(model) if model.conditional else None
        save_grid(images, path, labels=labels)
        runner.logger.info(f"wrote sample grid {path}")
        return path
