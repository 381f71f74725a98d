"""Sample from a trained model: a PNG grid, and an ``.npz`` (``arr_0``, uint8 N x H x W x 3) for FID.

    python tools/sample.py CONFIG --checkpoint work_dirs/x/iter_400000.pth --num 64 --cfg-scale 1.5
    torchrun --nproc_per_node 8 tools/sample.py CONFIG --checkpoint CKPT --num 50000 --launcher pytorch

The ``.npz`` matches the ADM evaluation suite's reference batches. With several processes every rank
samples its share (sample i goes to rank i % world_size) and rank 0 assembles them in order.
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys

import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import DictAction
from torchvision.utils import save_image

from visionmix import build_model
from visionmix.config import load_config
from visionmix.engine import CheckpointError, trust_path
from visionmix.engine.checkpoint import load_local_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by tools/train.py, or a state dict")
    parser.add_argument("--num", type=int, default=64, help="number of samples")
    parser.add_argument("--labels", type=int, nargs="+", help="class ids to cycle through (default: random classes)")
    parser.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (1 = none)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sampler", choices=["ddpm", "ddim", "euler", "heun", "ode", "sde"], default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    return parser.parse_args(argv)


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load model weights; for training checkpoints the EMA weights (mmengine stores them as state_dict)."""
    trust_path(path)  # named explicitly by the user
    checkpoint = load_local_checkpoint(path, map_location="cpu")
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("data_preprocessor")]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this config: missing {missing[:5]}, unexpected {unexpected[:5]}")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, 3); single-channel images are repeated to RGB."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    if x.shape[-1] == 1:
        x = x.repeat(1, 1, 1, 3)
    return x.cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.launcher == "pytorch" and not dist.is_initialized():
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if args.device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        cfg = load_config(args.config, args.cfg_options)
        model = build_model(cfg.model)
        load_weights(model, args.checkpoint)
    except (FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    model.to(args.device).eval()
    overrides = {k: v for k, v in dict(cfg_scale=args.cfg_scale, steps=args.steps, sampler=args.sampler).items()
                 if v is not None}
    out_dir = args.out or osp.join(osp.dirname(osp.abspath(args.checkpoint)), "samples")
    os.makedirs(out_dir, exist_ok=True)

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
    np.save(osp.join(out_dir, f".shard_{rank}.npy"), shard)
    if world > 1:
        dist.barrier()
    if rank == 0:
        shards = [np.load(osp.join(out_dir, f".shard_{r}.npy")) for r in range(world)]
        arr = np.empty((args.num, *shards[0].shape[1:]), np.uint8)
        for r, s in enumerate(shards):
            arr[r::world] = s
        name = f"samples_{args.num}_cfg{overrides.get('cfg_scale', model.sampling['cfg_scale'])}"
        tmp = osp.join(out_dir, name + ".partial.npz")
        np.savez(tmp, arr_0=arr, labels=all_labels.numpy())
        os.replace(tmp, osp.join(out_dir, name + ".npz"))
        grid = torch.from_numpy(arr[:64]).permute(0, 3, 1, 2).float() / 255
        save_image(grid, osp.join(out_dir, name + ".png"), nrow=int(math.sqrt(min(64, args.num))) or 1)
        for r in range(world):
            os.remove(osp.join(out_dir, f".shard_{r}.npy"))
        print(f"wrote {osp.join(out_dir, name + '.npz')} ({arr.shape}) and {name}.png")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
