"""Tiny training configs and in-process access to the tools for the tool tests."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from visionmix.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """Import tools/<name>.py as a module (tools/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"visionmix_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_digits_config(work_dir: Path, max_iters: int = 6, checkpoint_interval: int = 3) -> Config:
    """The quickstart recipe shrunk to a ~40k-parameter DRWKV on 8x8 digits (patch 2, batch 8), with
    drop path and label dropout on so that every random stream of training is exercised."""
    cfg = load_config(ROOT / "configs/quickstart/drwkv_digits8.py")
    cfg.model.backbone.update(hidden_size=32, depth=3, patch_size=2, drop_path_rate=0.1)
    cfg.model.sampling.update(steps=3)
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint.update(interval=checkpoint_interval, max_keep_ckpts=10)
    cfg.default_hooks.logger.update(interval=1)
    sample_grid_hook(cfg).update(interval=10_000, per_class=1, num_classes_shown=4)
    cfg.work_dir = str(work_dir)
    return cfg


def sample_grid_hook(cfg: Config) -> dict:
    """The SampleGridHook entry of a loaded config's hook list, found by type."""
    return next(h for h in cfg.custom_hooks if h["type"].__name__ == "SampleGridHook")


@HOOKS.register_module(force=True)  # by name: configs print with pretty_text
class LossRecorder(Hook):
    """Appends ``[iteration, loss]`` JSON lines to a file."""

    def __init__(self, path: str):
        self.path = path

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        with open(self.path, "a") as f:
            f.write(json.dumps([runner.iter + 1, float(outputs["loss"])]) + "\n")


def recorded(path: Path) -> dict[int, float]:
    return {it: loss for it, loss in (json.loads(line) for line in path.read_text().splitlines())}


@HOOKS.register_module(force=True)  # by name: configs print with pretty_text
class CrashAt(Hook):
    """Simulates a killed run: raises before iteration ``at`` starts."""

    def __init__(self, at: int):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt(f"simulated kill before iteration {self.at}")


@HOOKS.register_module(force=True)  # by name: configs print with pretty_text
class PoisonLossAt(Hook):
    """Makes the loss NaN from iteration ``at`` on by poisoning the inputs."""

    def __init__(self, at: int):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 >= self.at:
            data_batch["inputs"] = data_batch["inputs"].float() * float("nan")


@HOOKS.register_module(force=True)
class DumpParams(Hook):
    """Saves this rank's final parameters to ``<work_dir>/params_rank<r>.pt``."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                   Path(runner.work_dir) / f"params_rank{runner.rank}.pt")
