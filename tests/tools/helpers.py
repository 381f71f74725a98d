"""Tiny training configs and in-process access to the tools for the tool tests."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from visionmix.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """The command ``visionmix <name>`` (``tools/<name>.py``) as a module."""
    return importlib.import_module(f"visionmix.commands.{name}")


def load_script(name: str):
    """A script of tools/ that is not a command (gpu_check, demo: they drive a checkout), as a module."""
    spec = importlib.util.spec_from_file_location(f"visionmix_script_{name}", ROOT / "tools" / f"{name}.py")
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
            f.write(json.dumps([runner.iter + 1, float(outputs["loss"].detach())]) + "\n")


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


@HOOKS.register_module(force=True)  # by name: configs print with pretty_text
class SpikeLrAt(Hook):
    """Sets every parameter group's learning rate to ``lr`` before iteration ``at`` of a run that started from
    scratch (a resumed run is left alone): a divergence that following the NaN guard's advice gets past."""

    def __init__(self, at: int, lr: float):
        self.at, self.lr, self.fresh = at, lr, True

    def before_train(self, runner):
        self.fresh = runner.iter == 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.fresh and runner.iter + 1 == self.at:
            for group in runner.optim_wrapper.optimizer.param_groups:
                group["lr"] = self.lr


def write_config(cfg: Config, path: Path) -> Path:
    """Dump a config built in Python to a ``.py`` file the command-line tools can load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(path))
    return path


def tool_env() -> dict[str, str]:
    """The environment for running a tool in a subprocess: the repo importable (configs may name test hooks),
    no traceback switch and no data-root variable inherited from the caller, byte-code caching on."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VISIONMIX_DEBUG", "VISIONMIX_DATA", "PYTHONDONTWRITEBYTECODE")}  # cached byte-code: ~5 s less
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start(argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Any, Any]:
    """``python <argv>`` with output to temporary files, so a chatty process never blocks on a full pipe."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env={**tool_env(), **(extra_env or {})}, text=True,
                            stdout=out, stderr=err)
    return proc, out, err


def _collect(proc: subprocess.Popen, out: Any, err: Any, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for ``proc`` (killing it after ``timeout``: never leave a stray run behind); its exit code and output."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    texts = []
    for f in (out, err):
        f.seek(0)
        texts.append(f.read())
        f.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, *texts)


def start_tools(commands: dict[str, list[str]], cwd: Path) -> dict[str, tuple[subprocess.Popen, Any, Any]]:
    """Start ``python <argv>`` command lines side by side (start-up imports dominate each run);
    :func:`finish_tools` collects them."""
    return {name: _start(argv, cwd) for name, argv in commands.items()}


def finish_tools(started: dict[str, tuple[subprocess.Popen, Any, Any]]) -> dict[str, subprocess.CompletedProcess]:
    """Wait for :func:`start_tools`' processes; their exit codes and output."""
    return {name: _collect(*started_one) for name, started_one in started.items()}


def snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every file below ``folder`` with its size and modification time (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_tools(commands: dict[str, list[str]], cwd: Path, env: dict[str, dict[str, str]] | None = None,
              parallel: int = 4, timeout: float = 300) -> dict[str, subprocess.CompletedProcess]:
    """Run ``python <argv>`` command lines, ``parallel`` at a time (each one imports torch: a few hundred MB), with
    per-command extra environment variables; their exit codes and output."""
    pending, running, done = list(commands.items()), {}, {}
    while pending or running:
        while pending and len(running) < parallel:
            name, argv = pending.pop(0)
            running[name] = (*_start(argv, cwd, (env or {}).get(name)), time.monotonic())
        for name, (proc, out, err, started) in list(running.items()):
            if proc.poll() is None and time.monotonic() - started < timeout:
                continue
            done[name] = _collect(proc, out, err, timeout=0 if proc.poll() is None else 300)
            del running[name]
        time.sleep(0.05)
    return done
