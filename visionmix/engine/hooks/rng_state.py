"""Random-number-generator state in checkpoints, so a resumed run draws the same noise as an unbroken one.

mmengine restores weights, optimiser, EMA and the iteration, and replays the data loader, but not the
generators behind timestep/noise sampling, label dropout and drop-path. This hook stores every
rank's CPU/CUDA/numpy/python generator states in the checkpoint and puts them back right before the
first resumed iteration, i.e. after mmengine has replayed the loader (the replay itself draws from
the global generator when it builds its iterator; datasets use their own generators for augmentation).
"""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS


def capture_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@HOOKS.register_module()
class RNGStateHook(Hook):
    # after the NaN guard, before CheckpointHook (VERY_LOW) saves in the same after_train_iter
    priority = "LOW"

    def __init__(self) -> None:
        self._gathered: list | None = None
        self._to_restore: dict | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # every rank must join the gather, but only rank 0 saves: gather when a save is due
        if self._checkpoint_due(runner):
            self._gathered = all_gather_object(capture_rng_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["rng_state"] = self._gathered if self._gathered is not None else [capture_rng_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get("rng_state")
        if not states or not getattr(runner, "_resume", False):  # load_from starts a new run
            return
        if len(states) != get_world_size():
            runner.logger.warning(f"checkpoint holds generator states of {len(states)} processes, this run has "
                                  f"{get_world_size()}: keeping fresh generators (resume is not bit-exact)")
            return
        self._to_restore = states[get_rank()]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._to_restore is not None:
            restore_rng_state(self._to_restore)
            self._to_restore = None

    @staticmethod
    def _checkpoint_due(runner) -> bool:
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch:
                if hook.every_n_train_iters(runner, hook.interval):
                    return True
                if hook.save_last and hook.is_last_train_iter(runner):
                    return True
        return False
