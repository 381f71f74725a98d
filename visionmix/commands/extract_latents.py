"""Encode an ImageNet-style image folder into VAE latents once, for latent-diffusion training.

    visionmix extract-latents --data-root $VISIONMIX_DATA/imagenet/train --image-size 256 \\
        --vae checkpoints/sd-vae-ft-ema --out $VISIONMIX_DATA/imagenet256_latents

Each image gets the ADM center crop (``ImageFolderDataset``, no random flip), is mapped to [-1, 1] and
encoded together with its horizontal mirror image. ``z = vae.encode(x).latent_dist.sample(generator)``
is drawn as in DiT's training loop but stored *unscaled* (the data preprocessor applies the 0.18215
scaling, so one cache serves any scale). Each image and each flip has its own CPU generator seeded from
``(--seed, image index, flip)``, so the stored latents do not depend on batch size, worker count,
sharding or resuming (the VAE's own arithmetic may still differ slightly between devices).

Output: ``LatentDataset``'s format (``visionmix/datasets/latents.py``): shards of ``--shard-size`` images,
each written atomically, then ``meta.json`` with ``complete: true``. Rerunning with the same arguments
resumes: complete shards are kept, the rest encoded. The VAE is never downloaded: ``--vae`` must be a
local diffusers folder (``visionmix.datasets.vae`` says where to get one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from visionmix.datasets import ImageFolderDataset, load_vae, resolve_root
from visionmix.datasets.latents import (FORMAT, META_FILE, VERSION, save_json_atomic, save_shard, shard_entry,
                                        shard_is_complete)

SAMPLING = ("latent_dist.sample() with one torch CPU generator per image and flip, seeded by "
            "numpy SeedSequence([seed, image index, flip]).generate_state(1, uint64)")


def image_generator(seed: int, index: int, flip: int) -> torch.Generator:
    """The noise source of one (image, flip) pair: independent of batching and devices."""
    state = int(np.random.SeedSequence([seed, index, flip]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(state)


@torch.no_grad()
def encode_pairs(vae: torch.nn.Module, images: torch.Tensor, indices: list[int], seed: int) -> np.ndarray:
    """uint8 images ``(B, 3, H, W)`` -> float32 latents ``(B, 2, C, h, w)`` of [image, mirror image]."""
    device = next(vae.parameters()).device
    x = images.to(device, torch.float32) / 127.5 - 1.0
    both = torch.cat([x, x.flip(-1)])
    generators = [image_generator(seed, i, 0) for i in indices] + [image_generator(seed, i, 1) for i in indices]
    z = vae.encode(both).latent_dist.sample(generator=generators)
    return torch.stack(z.chunk(2), dim=1).float().cpu().numpy()


def plan_meta(args: argparse.Namespace, dataset: ImageFolderDataset, vae: torch.nn.Module) -> dict:
    """Everything that determines the output (a resumed run must match it), with no shards yet."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)  # one 2x downsample between encoder levels
    side = args.image_size // factor
    return dict(
        format=FORMAT, version=VERSION, complete=False, count=len(dataset),
        latent_shape=[int(vae.config.latent_channels), side, side], dtype=args.dtype,
        image_size=args.image_size, vae=str(resolve_root(args.vae).resolve()),
        vae_scaling_factor=float(getattr(vae.config, "scaling_factor", 0.18215)), seed=args.seed,
        sampling=SAMPLING, class_cond=not args.unconditional, classes=dataset.classes,
        data_root=str(dataset.root.resolve()), shard_size=args.shard_size, shards=[])


def previous_run(out: Path, plan: dict) -> dict | None:
    """The earlier ``meta.json`` in ``out`` if it describes this same extraction; refuse anything else."""
    path = out / META_FILE
    if not path.is_file():
        if any(out.glob("latents_*.npy")):
            raise SystemExit(f"{str(out)!r} holds latent shards but no {META_FILE}; use an empty --out folder")
        return None
    old = json.loads(path.read_text())
    changed = [k for k in plan if k not in ("complete", "shards") and old.get(k) != plan[k]]
    if changed:
        raise SystemExit(f"{str(out)!r} holds an extraction with different {', '.join(changed)}; use another "
                         "--out folder (or delete this one) rather than mixing the two")
    return old


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="<root>/<class>/<image> folder (ImageNet train)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--vae", required=True, help="local diffusers AutoencoderKL folder (e.g. sd-vae-ft-ema)")
    parser.add_argument("--out", required=True, help="output folder for shards and meta.json")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent_dist.sample() noise")
    parser.add_argument("--shard-size", type=int, default=4096, help="images per shard file")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="storage dtype")
    parser.add_argument("--unconditional", action="store_true", help="store labels -1 instead of class ids")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        dataset = ImageFolderDataset(args.data_root, args.image_size, random_flip=False,
                                     class_cond=not args.unconditional)  # first: cheap to check, fails fast
        vae = load_vae(args.vae, args.device)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        raise SystemExit(f"extract_latents: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = plan_meta(args, dataset, vae)
    old = previous_run(out, meta)
    if old is not None and old.get("complete"):
        print(f"{out}: already complete ({old['count']} latents)")
        return 0
    save_json_atomic(out / META_FILE, meta)  # complete=False marks a run in progress

    n, latent_shape = len(dataset), tuple(meta["latent_shape"])
    ranges = [(s, start, min(start + args.shard_size, n)) for s, start in enumerate(range(0, n, args.shard_size))]
    todo = [r for r in ranges if not shard_is_complete(out, r[0], r[2] - r[1], latent_shape)]
    print(f"{n} images -> {len(ranges)} shards in {out} ({len(ranges) - len(todo)} already done)", flush=True)
    # one loader over all remaining work, in order; batches never straddle a shard boundary
    batches = [list(range(b, min(b + args.batch_size, end))) for _, start, end in todo
               for b in range(start, end, args.batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=args.num_workers)
    parts, labels, began = [], [], time.time()
    pending = iter(todo)
    shard, start, end = next(pending, (None, 0, 0))
    for indices, batch in zip(batches, loader):
        z = encode_pairs(vae, batch["inputs"], indices, args.seed)
        if z.shape[2:] != latent_shape:
            raise SystemExit(f"the VAE produced latents {z.shape[2:]}, expected {latent_shape}")
        parts.append(z.astype(args.dtype))
        labels.append(batch["labels"].numpy())
        if indices[-1] == end - 1:
            save_shard(out, shard, np.concatenate(parts), np.concatenate(labels))
            print(f"shard {shard}: images {start}..{end - 1} ({time.time() - began:.0f}s)", flush=True)
            parts, labels = [], []
            shard, start, end = next(pending, (None, 0, 0))

    meta.update(complete=True, shards=[shard_entry(s, e - b) for s, b, e in ranges])
    save_json_atomic(out / META_FILE, meta)
    print(f"done: {n} latents of shape {latent_shape} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
