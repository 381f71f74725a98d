"""Train a diffusion model with the mmengine Runner.

    visionmix train configs/drwkv/drwkv_b2_in256.py
    visionmix train CONFIG --cfg-options model.backbone.mixer=linear_attention
    visionmix train CONFIG --resume                  # latest checkpoint in the work dir
    visionmix train CONFIG --resume work_dirs/x/iter_5000.pth --cfg-options optim_wrapper.optimizer.lr=5e-5
    visionmix train CONFIG --overwrite               # start again; old checkpoints move to overwritten_<time>/
    visionmix train CONFIG --tensorboard             # scalars to TensorBoard too (always: <log dir>/vis_data/)
    torchrun --nproc_per_node 8 -m visionmix train CONFIG --launcher pytorch

A work dir that holds checkpoints is only trained into with --resume (continue) or --overwrite (start again), and
by one run at a time (a lock file names the run that holds it). Checkpoints are read as data; --trust-checkpoint
fully unpickles the one named by --resume / load_from (old or foreign files that hold Python objects). Training
scalars go to <work_dir>/<time>/vis_data/scalars.json. mmengine's environment and config dumps go to the log file in
the work dir; --verbose prints them too.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from visionmix.cli import ArgumentParser, CfgOptionsAction, UsageError, nearest_folder, run_tool  # light: no torch

# torch, mmengine and visionmix are imported inside the functions that need them: --help and command-line
# mistakes answer at once instead of after several seconds of imports.
HEALTH_FILE = "checkpoint_health.json"  # visionmix.engine.hooks.nan_guard.HEALTH_FILE


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file (.py or .yaml)")
    parser.add_argument("--work-dir", help="where logs, checkpoints and sample grids go (default work_dirs/<config>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="PATH",
                        help="resume from PATH (a checkpoint, or a work dir's latest), or from the work dir's latest "
                             "checkpoint when no PATH is given")
    parser.add_argument("--overwrite", action="store_true",
                        help="train into a work dir that holds checkpoints: they move to <work_dir>/overwritten_<time>/")
    parser.add_argument("--data-root", help="the dataset's root folder (configs whose dataset reads files)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only; ignored with a warning on CPU)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE",
                        help="config overrides, e.g. model.backbone.mixer=NAME train_cfg.max_iters=1000; with --resume "
                             "optim_wrapper.optimizer.* (lr, ...) replace the checkpoint's values")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle the checkpoint named by --resume / load_from, which runs any code inside "
                             "it: only for files you made (checkpoints are otherwise read as data)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the training scalars for TensorBoard (needs the tensorboard package)")
    parser.add_argument("--verbose", action="store_true", help="print mmengine's environment and config dumps too")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def checkpoints_in(folder: str) -> list[str]:
    """The ``*.pth`` files in ``folder``, oldest iteration first."""
    if not osp.isdir(folder):
        return []
    number = lambda name: int(m.group(1)) if (m := re.search(r"(\d+)\.pth$", name)) else -1  # noqa: E731
    return sorted((f for f in os.listdir(folder) if f.endswith(".pth")), key=lambda f: (number(f), f))


def held_files(work_dir: str) -> list[str]:
    """What a new run would overwrite: checkpoints and mmengine's ``last_checkpoint`` pointer."""
    pointer = ["last_checkpoint"] if osp.isfile(osp.join(work_dir, "last_checkpoint")) else []
    return checkpoints_in(work_dir) + pointer


def check_work_dir(work_dir: str, args: argparse.Namespace, resuming: bool = False) -> None:
    """Refuse to train a new run into a work dir that holds another run's checkpoints (``resuming``: the config
    itself says ``resume=True``)."""
    if args.overwrite and args.resume:
        raise UsageError("--overwrite moves the work dir's checkpoints aside and --resume continues from them: "
                               "pass one of them")
    held = [] if args.resume or args.overwrite or resuming else held_files(work_dir)
    if held:
        shown = ", ".join(held[-3:]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise UsageError(f"work dir {osp.abspath(work_dir)} already holds checkpoints ({shown}); pass --resume "
                               "to continue that run, --work-dir DIR to start a new one elsewhere, or --overwrite to "
                               "move them into <work dir>/overwritten_<time>/ and start again")


def check_is_folder(work_dir: str) -> None:
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise UsageError(f"work dir {osp.abspath(work_dir)} is a file, not a folder: pass --work-dir with a folder")


def resume_checkpoint(work_dir: str, resume: Optional[str]) -> Optional[str]:
    """The checkpoint ``--resume`` means: PATH itself, or the latest in a folder (PATH or the work dir)."""
    if resume is None:
        return None
    folder = work_dir if resume == "auto" else resume
    if resume != "auto" and not osp.isdir(resume):
        if not osp.isfile(resume):
            raise FileNotFoundError(f"resume checkpoint not found: {osp.abspath(resume)}; checkpoints in "
                                    f"{osp.abspath(work_dir)}: {checkpoints_in(work_dir) or 'none'}")
        return resume
    pointer = osp.join(folder, "last_checkpoint")
    if osp.isfile(pointer):
        named = Path(pointer).read_text().strip()
        for candidate in (named, osp.join(folder, osp.basename(named))):  # the second: the folder was moved
            if named and osp.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"--resume: {osp.abspath(pointer)} points to {named}, which does not exist; "
                                f"checkpoints there: {checkpoints_in(folder) or 'none'}; pass one as --resume PATH")
    if found := checkpoints_in(folder):
        return osp.join(folder, found[-1])
    raise UsageError(f"--resume: nothing to resume in {osp.abspath(folder)} (no last_checkpoint, no *.pth); "
                           "drop --resume to start a new run, or pass --resume PATH or --work-dir DIR")


def check_command_line(args: argparse.Namespace) -> None:
    """What can be checked before loading anything: the config exists; the launcher can start here; the work dir,
    when given, is a folder and suits --resume."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config file not found: {osp.abspath(args.config)}")
    if args.launcher == "slurm" and "SLURM_PROCID" not in os.environ:
        raise UsageError("--launcher slurm: this is not a SLURM job step (no SLURM_PROCID); start it with srun, or "
                         "use torchrun ... --launcher pytorch")
    if args.launcher == "pytorch" and "RANK" not in os.environ:
        raise UsageError("--launcher pytorch: no RANK in the environment; start it with torchrun --nproc_per_node N "
                         "visionmix train ..., or drop --launcher")
    if args.work_dir:
        check_is_folder(args.work_dir)
        check_work_dir(args.work_dir, args)
        resume_checkpoint(args.work_dir, args.resume)


def dataset_root_holder(dataset: Any) -> Optional[dict]:
    """The dataset config (possibly wrapped: ``dataset=`` / ``datasets=[...]``) that has a ``root``/``data_root``."""
    if not isinstance(dataset, dict):
        return None
    if "root" in dataset or "data_root" in dataset:
        return dataset
    inner = [dataset.get("dataset")] + list(dataset.get("datasets") or [])
    return next((h for h in map(dataset_root_holder, inner) if h is not None), None)


def set_data_root(cfg, root: str) -> None:
    """--data-root: the training dataset's ``root`` (or ``data_root``), and the config's ``data_root`` variable."""
    dataset = (cfg.get("train_dataloader") or {}).get("dataset") or {}
    holder = dataset_root_holder(dataset)
    if holder is None:
        kind = str(getattr(dataset.get("type"), "__name__", dataset.get("type"))).rsplit(".", 1)[-1]
        raise UsageError(f"--data-root: this config's dataset ({kind}) has no root folder (it reads no files "
                               "you provide); drop --data-root")
    holder["root" if "root" in holder else "data_root"] = root
    if "data_root" in cfg:
        cfg.data_root = root


def apply_args(cfg, args: argparse.Namespace):
    """Put the command line into the config; refuses a work dir / --resume combination that would lose work."""
    cfg.launcher = args.launcher
    default = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default
    check_is_folder(cfg.work_dir)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.amp:
        import torch

        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.dtype = "bfloat16"
        else:  # mmengine's AmpOptimWrapper asserts on CPU
            warnings.warn("--amp needs CUDA; training in float32 on this machine")
    if args.tensorboard:
        add_tensorboard(cfg)
    in_config = (cfg.get("load_from") or "auto") if cfg.get("resume") and not args.overwrite else None
    check_work_dir(cfg.work_dir, args, resuming=in_config is not None)
    if resume := resume_checkpoint(cfg.work_dir, args.resume or in_config):
        cfg.resume, cfg.load_from = True, resume
    elif args.overwrite:
        cfg.resume = False  # a new run, whatever the config says
    if args.trust_checkpoint:
        trust_named_checkpoint(cfg)
    return cfg


def trust_named_checkpoint(cfg) -> None:
    """--trust-checkpoint: full unpickling for exactly the file this run resumes or loads (never a folder)."""
    from visionmix.checkpoint_io import trust_path

    source = str(cfg.get("load_from") or "")
    if not source or source.startswith("zoo:"):
        raise UsageError("--trust-checkpoint: this run loads no local checkpoint (no --resume, no load_from file)")
    trust_path(source)


def add_tensorboard(cfg) -> None:
    """--tensorboard: mmengine's TensorBoard backend beside the local one (scalars.json)."""
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs it
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    # by registered name: a class object would not print in a config loaded from a dump
    visualizer = cfg.get("visualizer") or dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
    backends = list(visualizer.get("vis_backends") or [])
    if not any("Tensorboard" in str(b.get("type")) for b in backends):
        backends.append(dict(type="TensorboardVisBackend"))
    visualizer["vis_backends"] = backends
    cfg.visualizer = visualizer


def load_config(path: str, cfg_options: Optional[dict] = None):
    from visionmix.config import load_config as load

    return load(path, cfg_options)


def validate_config(cfg) -> None:
    """visionmix.config_check's argument checks, where that module exists."""
    try:
        from visionmix.config_check import check_config
    except ModuleNotFoundError as err:
        if err.name != "visionmix.config_check":
            raise
        return
    check_config(cfg)


def preflight(cfg) -> None:
    """Fail before the Runner writes into the work dir: a missing data root, a checkpoint that does not fit."""
    from mmengine.registry import DATASETS

    from visionmix.datasets import resolve_root
    from visionmix.engine.checkpoint import check_config_checkpoint

    holder = dataset_root_holder((cfg.get("train_dataloader") or {}).get("dataset"))
    root = holder and (holder.get("root") or holder.get("data_root"))
    if root and not resolve_root(root).exists():
        DATASETS.build(cfg.train_dataloader.dataset)  # raises the dataset's own "no data at ..." message
    check_free_space(cfg.work_dir)
    check_config_checkpoint(cfg)


def check_free_space(work_dir: str, floor: int = 64 << 20) -> None:
    """A full disk fails the first checkpoint (and every log line) hours in: need room for two checkpoints as
    large as the work dir's latest (or ``floor`` bytes for a new run) before starting."""
    existing = nearest_folder(work_dir)
    latest = checkpoints_in(work_dir)
    need = max(floor, 2 * os.path.getsize(osp.join(work_dir, latest[-1]))) if latest else floor
    free = shutil.disk_usage(existing).free
    if free < need:
        raise OSError(f"the disk holding work dir {osp.abspath(work_dir)} has {free / 2**20:.0f} MiB free; this "
                      f"run needs about {need / 2**20:.0f} MiB for its checkpoints: free some space or pass "
                      "--work-dir on another disk")


def remove_partial_checkpoints(work_dir: str) -> None:
    """``*.partial`` files are checkpoints a killed run did not finish writing: never resumable, safe to drop."""
    for name in sorted(os.listdir(work_dir)) if osp.isdir(work_dir) else []:
        if name.endswith(".partial"):
            os.remove(osp.join(work_dir, name))
            print(f"removed {name}, a checkpoint an earlier run did not finish writing", file=sys.stderr)


def prepare_work_dir(cfg, args: argparse.Namespace) -> Optional[Path]:
    """With --overwrite, move the old run's checkpoints, pointer, health record, sample grids and config dump into
    ``<work_dir>/overwritten_<time>/`` (rank 0 only); returns that folder, or None when nothing moved."""
    work = Path(cfg.work_dir)
    if not args.overwrite or not held_files(str(work)) or os.environ.get("RANK", "0") != "0":
        return None
    names = held_files(str(work)) + [HEALTH_FILE, "samples", osp.basename(cfg.filename or "")]
    present = [n for n in names if n and (work / n).exists()]
    target = work / time.strftime("overwritten_%Y%m%d_%H%M%S")
    while target.exists():
        target = target.with_name(target.name + "_")
    target.mkdir()
    for name in present:
        shutil.move(str(work / name), str(target / name))
    print(f"--overwrite: moved {len(present)} files of the previous run to {target}", file=sys.stderr)
    return target


def setup_cpu_distributed(cfg) -> None:
    """mmengine's pytorch launcher calls cuda.set_device: on CPU start gloo ourselves and wrap with device_ids=None."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                 find_unused_parameters=cfg.get("find_unused_parameters", False))


def build_runner(cfg, args: argparse.Namespace):
    """The Runner (after the checks and the lock); explicit optimiser settings in --cfg-options win over a resumed
    checkpoint's."""
    import torch

    from visionmix.engine import VisionMixRunner
    from visionmix.engine.runner import optimizer_overrides

    prepare_work_dir(cfg, args)
    if args.launcher != "none" and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)
    runner = VisionMixRunner.from_cfg(cfg, verbose=args.verbose)
    if cfg.get("resume"):
        runner.optimizer_overrides = optimizer_overrides(args.cfg_options)
    return runner


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    check_command_line(args)
    lock = None
    try:
        cfg = apply_args(load_config(args.config, args.cfg_options), args)
        validate_config(cfg)
        preflight(cfg)
        lock = lock_work_dir(cfg.work_dir)
        build_runner(cfg, args).train()
    finally:
        if lock is not None:
            lock.release()
        if "torch" in sys.modules:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    return 0


def lock_work_dir(work_dir: str):
    """One run per work dir (rank 0 holds the lock for the job); taken after every check, before the first write."""
    from visionmix.engine.work_dir_lock import WorkDirLock

    if os.environ.get("RANK", "0") != "0":
        return None
    lock = WorkDirLock(work_dir).acquire()
    if lock.taken_over:
        print(f"warning: {lock.taken_over}", file=sys.stderr)
    remove_partial_checkpoints(work_dir)
    return lock


if __name__ == "__main__":
    sys.exit(run_tool(main))
