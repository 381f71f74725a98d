"""Stop training at the first non-finite loss, before a checkpoint can store the damaged weights."""
from __future__ import annotations

import math
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def last_checkpoint(work_dir: str) -> str | None:
    """The path mmengine's CheckpointHook recorded as the latest checkpoint, if any."""
    pointer = osp.join(work_dir, "last_checkpoint")
    if osp.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """Raises with the iteration number and the last checkpoint when the loss is NaN or infinite.

    Runs before the checkpoint hook (priority ABOVE_NORMAL), so the last checkpoint on disk is the
    last good one.
    """

    priority = "ABOVE_NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is None or math.isfinite(value := float(loss.detach())):
            return
        raise NonFiniteLossError(
            f"loss became {value} at iteration {runner.iter + 1}; stopped before saving. Last good "
            f"checkpoint: {last_checkpoint(runner.work_dir) or 'none yet'}. Lower the learning rate or "
            "enable gradient clipping (optim_wrapper.clip_grad), then resume from it."
        )
