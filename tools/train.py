"""Train a diffusion model with the mmengine Runner.

    python tools/train.py configs/drwkv/drwkv_b2_in256.py
    python tools/train.py CONFIG --cfg-options model.backbone.mixer=linear_attention
    python tools/train.py CONFIG --resume                  # latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_5000.pth
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import warnings

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction

from visionmix.config import load_config
from visionmix.engine import CheckpointError, NonFiniteLossError, VisionMixRunner, trust_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file (.py or .yaml)")
    parser.add_argument("--work-dir", help="where logs, checkpoints and sample grids go (default work_dirs/<config>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from PATH, or from the work dir's latest checkpoint when no PATH is given")
    parser.add_argument("--data-root", help="override the config's dataset root")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only; ignored with a warning on CPU)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="config overrides, e.g. model.backbone.mixer=NAME train_cfg.max_iters=1000")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def apply_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.data_root:
        cfg.train_dataloader.dataset.root = args.data_root
    if args.amp:
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.dtype = "bfloat16"
        else:  # mmengine's AmpOptimWrapper asserts on CPU
            warnings.warn("--amp needs CUDA; training in float32 on this machine")
    trust_path(cfg.work_dir)
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.isfile(args.resume):
            found = sorted(f for f in os.listdir(cfg.work_dir) if f.endswith(".pth")) if osp.isdir(cfg.work_dir) else []
            raise FileNotFoundError(f"resume checkpoint not found: {osp.abspath(args.resume)}; checkpoints in "
                                    f"{cfg.work_dir}: {found or 'none'}")
        trust_path(args.resume)  # the user named it: full unpickling (optimiser, message hub) is allowed
        cfg.resume, cfg.load_from = True, args.resume
    if args.launcher != "none" and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """mmengine's pytorch launcher calls cuda.set_device: on CPU start gloo ourselves and wrap with device_ids=None."""
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                 find_unused_parameters=cfg.get("find_unused_parameters", False))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = apply_args(load_config(args.config, args.cfg_options), args)
        runner = VisionMixRunner.from_cfg(cfg)
        runner.train()
    except (FileNotFoundError, CheckpointError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
