"""Sample from a trained model: a PNG grid, and an ``.npz`` (``arr_0``, uint8 N x H x W x 3) for FID.

    visionmix sample CONFIG --checkpoint work_dirs/x/iter_400000.pth --num 64 --cfg-scale 1.5
    visionmix sample --checkpoint zoo:dit_xl2_in256 --num 16     # a model-zoo row brings its config
    torchrun --nproc_per_node 8 -m visionmix sample CONFIG --checkpoint CKPT --num-samples 50000 --launcher pytorch

The ``.npz`` matches the ADM evaluation suite's reference batches. The PNG shows one row per class when the
samples span at most 16 classes (else a square of the first 64), upscaled to >= 256 px (visionmix.visualization).
With several processes every rank samples its share (sample i goes to rank i % world_size) and rank 0 assembles
them in order. ``zoo:NAME`` outputs go to ``samples/NAME/`` in the current folder unless ``--out`` says otherwise.
Outputs appear whole or not at all (written under temporary names, then renamed).
Exit codes: 0 done, 1 runtime error (missing or unfitting checkpoint...), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys
from typing import Any, List, Optional, Sequence, Tuple

from visionmix.cli import (TRUST_HELP, ArgumentParser, CfgOptionsAction, UsageError, run_tool,  # light: no torch
                           nearest_folder, samples_dir, trust_checkpoint_if_asked)

# torch, numpy, mmengine and visionmix are imported inside the functions that need them: --help and
# bad arguments answer at once instead of after many seconds of imports.
ZOO = "zoo:"
GRID_MAX_CLASSES = 16  # more classes than this (random ImageNet labels) would make a tall strip: a square instead
GRID_SQUARE = 64


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (argparse only: no heavy imports)."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the config the checkpoint was trained with (optional for zoo:NAME)")
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint written by visionmix train, a state dict, or zoo:NAME (visionmix.hub)")
    # --num-samples first: under torchrun only it works, since torchrun's own parser reads the whole command line
    # and refuses "--num" as an ambiguous prefix of its --numa-binding
    parser.add_argument("--num-samples", "--num", dest="num", type=int, default=64, help="number of samples")
    parser.add_argument("--labels", type=int, nargs="+",
                        help="class ids to cycle through (default: random classes); -1 = no label, "
                             "if the model has a null label")
    parser.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (1 = none)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp_2m", "euler", "heun", "ode", "sde"], default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: samples/ next to the checkpoint; "
                                                     "samples/NAME/ in the current folder for zoo:NAME or a file "
                                                     "inside the installed package)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad values before anything is imported, built or written (:class:`UsageError`)."""
    for flag, value in (("--num", args.num), ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.cfg_scale is not None and not (math.isfinite(args.cfg_scale) and args.cfg_scale >= 0):
        raise UsageError(f"--cfg-scale must be a finite number >= 0 (1 = no guidance), got {args.cfg_scale}")
    if args.out is not None and osp.exists(args.out) and not osp.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")
    if args.checkpoint.startswith(ZOO):
        return  # the name is checked against the table when the model is loaded
    if args.config is None:
        raise UsageError(f"CONFIG is required with a local checkpoint ({args.checkpoint}): name the config it was "
                         f"trained with, or use --checkpoint {ZOO}NAME for a model-zoo row")
    if not osp.isfile(args.checkpoint):
        where = osp.abspath(osp.expanduser(args.checkpoint))
        folder = osp.dirname(where)
        near = sorted(f for f in os.listdir(folder) if f.endswith((".pth", ".pt"))) if osp.isdir(folder) else []
        hint = f" ({folder} has {', '.join(near[:4])}{', ...' if len(near) > 4 else ''})" if near else ""
        raise FileNotFoundError(f"checkpoint not found: {where}{hint}")


def check_labels(args: argparse.Namespace, model: Any, cfg_scale: float) -> None:
    """Labels and guidance the built model can take (:class:`UsageError` otherwise)."""
    backbone = model.backbone
    null = backbone.null_class
    if not model.conditional:
        if args.labels:
            raise UsageError(f"--labels: this model is unconditional (num_classes={backbone.num_classes})")
        return
    allowed = f"0..{backbone.num_classes - 1}" + (" or -1 (no label)" if null is not None else "")
    for label in args.labels or []:
        if not (0 <= label < backbone.num_classes or (label == -1 and null is not None)):
            reason = " (this model has no null label: it was trained with class_dropout_prob=0)" if label == -1 else ""
            raise UsageError(f"--labels: {label} is not a class of this model; use {allowed}{reason}")
    if cfg_scale != 1.0 and null is None:
        raise UsageError(f"--cfg-scale {cfg_scale}: guidance needs a null label and this model has none "
                    "(class_dropout_prob=0); use --cfg-scale 1")


def to_uint8(images: Any) -> Any:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, 3); single-channel images are repeated to RGB."""
    import torch

    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    if x.shape[-1] == 1:
        x = x.repeat(1, 1, 1, 3)
    return x.cpu().numpy()


def grid_cells(arr: Any, labels: Any) -> Tuple[Any, Optional[Any]]:
    """What the PNG shows: [-1, 1] images and their labels (one row per class) when the samples are labelled with
    at most :data:`GRID_MAX_CLASSES` classes, up to ``max(8, 64 // classes)`` (<= 16) per class; else the first
    64 images and None (a square)."""
    import numpy as np
    import torch

    labels = np.asarray(labels).reshape(-1)[: len(arr)]
    classes = np.unique(labels)
    keep, by_class = np.arange(min(GRID_SQUARE, len(arr))), None
    if (labels >= 0).any() and len(classes) <= GRID_MAX_CLASSES:
        per_class = min(16, max(8, GRID_SQUARE // len(classes)))
        keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])
        by_class = labels[keep]
    shown = arr[keep]
    if (shown == shown[..., :1]).all():  # grey samples (to_uint8 repeats one channel): a grey PNG, a third the size
        shown = shown[..., :1]
    images = torch.from_numpy(np.ascontiguousarray(shown)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return images, by_class


def write_outputs(out_dir: str, name: str, arr: Any, labels: Any) -> List[str]:
    """``<name>.npz`` and ``<name>.png`` in ``out_dir``, each written whole under a temporary name in that
    folder and renamed at the end; on any failure neither temporary file remains."""
    import numpy as np

    from visionmix.atomic_write import atomic_path
    from visionmix.visualization import save_grid

    final = [osp.join(out_dir, name + ext) for ext in (".npz", ".png")]
    with atomic_path(final[0]) as npz, atomic_path(final[1]) as png:
        np.savez(npz, arr_0=arr, labels=labels)
        images, by_class = grid_cells(arr, labels)
        save_grid(images, str(png), labels=by_class)
    return final


def check_output_size(model: Any, num: int, out_dir: str) -> None:
    """Refuse (before sampling) a request whose samples cannot be held: rank 0 assembles every sample in memory
    and writes them as one ``.npz`` (uint8 RGB images plus an int64 label each)."""
    import shutil

    scale = 8 if model.latent_scale is not None else 1  # SD-VAE: 8 pixels a latent
    height, width = (side * scale for side in model.backbone.input_size)
    need = num * (height * width * 3 + 8)
    folder = nearest_folder(out_dir)
    limits = [("free on the disk at " + folder, shutil.disk_usage(folder).free)]
    if (memory := available_memory()) is not None:
        limits.append(("of available memory", memory))
    for what, have in limits:
        if need > have:
            raise UsageError(f"--num-samples {num}: the {height}x{width} samples need {need / 1e9:.1f} GB, more than "
                             f"the {have / 1e9:.1f} GB {what}; sample fewer (several runs with different --seed "
                             "values)")


def available_memory() -> Optional[int]:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def sample_all(args: argparse.Namespace, model: Any, overrides: dict, rank: int, world: int) -> Tuple[Any, Any]:
    """This rank's samples (uint8, N x H x W x 3) and every sample's label."""
    import numpy as np
    import torch

    label_gen = torch.Generator().manual_seed(args.seed)
    if not model.conditional:
        all_labels = torch.full((args.num,), -1, dtype=torch.long)
    elif args.labels:
        all_labels = torch.tensor(args.labels).repeat(math.ceil(args.num / len(args.labels)))[: args.num]
    else:
        all_labels = torch.randint(0, model.backbone.num_classes, (args.num,), generator=label_gen)
    mine = torch.arange(rank, args.num, world)
    chunks = []
    for start in range(0, len(mine), args.batch_size):
        idx = mine[start:start + args.batch_size]
        generator = torch.Generator(args.device).manual_seed(args.seed * 100_003 + int(idx[0]))
        images = model.sample(all_labels[idx], generator=generator, progress=rank == 0, **overrides)
        chunks.append(to_uint8(images))
    shard = np.concatenate(chunks) if chunks else np.zeros((0, 0, 0, 3), np.uint8)
    return shard, all_labels.numpy()


def gather(shard: Any, out_dir: str, num: int, rank: int, world: int) -> Any:
    """All ranks' samples in order on rank 0 (None elsewhere), through ``.shard_<r>.npy`` files in
    ``out_dir`` that are removed again whatever happens."""
    import numpy as np
    import torch.distributed as dist

    from visionmix.atomic_write import atomic_path

    if world == 1:
        return shard
    os.makedirs(out_dir, exist_ok=True)
    paths = [osp.join(out_dir, f".shard_{r}.npy") for r in range(world)]
    arr = None
    try:
        with atomic_path(paths[rank]) as temp:
            np.save(temp, shard)
        dist.barrier()
        if rank == 0:
            shards = [np.load(p, allow_pickle=False) for p in paths]
            arr = np.empty((num, *shards[0].shape[1:]), np.uint8)
            for r, s in enumerate(shards):
                arr[r::world] = s
        dist.barrier()  # every shard is read before its rank removes it
        return arr
    finally:
        if osp.exists(paths[rank]):
            os.remove(paths[rank])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Validate, build, load, sample, write; errors are raised for :func:`visionmix.cli.run_tool`."""
    args = parse_args(argv)
    check_args(args)
    trust_checkpoint_if_asked(args)
    import torch
    import torch.distributed as dist

    from visionmix.hub import load_model

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    overrides = {k: v for k, v in dict(cfg_scale=args.cfg_scale, steps=args.steps, sampler=args.sampler).items()
                 if v is not None}

    def scale_of(model: Any) -> float:
        return overrides.get("cfg_scale", model.sampling["cfg_scale"])

    # bad labels or guidance fail on the built model, before any weights are read (or downloaded)
    model, info = load_model(args.checkpoint, args.config, args.cfg_options,
                             before_load=lambda built: check_labels(args, built, scale_of(built)))
    cfg_scale = scale_of(model)
    if args.launcher == "pytorch" and not dist.is_initialized():
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if args.device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    model.to(args.device).eval()
    out_dir = args.out or samples_dir(args.checkpoint)
    if rank == 0:
        check_output_size(model, args.num, out_dir)
    try:
        shard, labels = sample_all(args, model, overrides, rank, world)
        arr = gather(shard, out_dir, args.num, rank, world)
        if rank == 0:
            npz, png = write_outputs(out_dir, f"samples_{args.num}_cfg{cfg_scale}", arr, labels)
            print(f"wrote {npz} ({arr.shape}) and {osp.basename(png)}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
