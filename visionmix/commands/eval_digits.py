"""Score a class-conditional digits model: how often its samples are the requested digit, and how close their
features are to real digits (Frechet distance in a held-out-validated classifier's hidden layer).

    visionmix eval-digits configs/quickstart/drwkv_digits8.py --checkpoint work_dirs/.../iter_3000.pth
    visionmix eval-digits CONFIG --checkpoint CKPT --image-size 12 16   # sample at other resolutions
    visionmix eval-digits --checkpoint zoo:drwkv_digits                  # a model-zoo row brings its config

``--image-size`` samples at another resolution than the model was trained at (any-resolution models: fuzzy or
resampled positions) and area-downsamples the samples to the scorer's 8x8 before scoring. Checkpoints are read as
data (``--trust-checkpoint`` fully unpickles one you made). Exit codes: 0 done, 1 runtime error, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

import torch
import torch.nn.functional as F
from mmengine.config import DictAction

from visionmix.cli import TRUST_HELP, ArgumentParser, UsageError, run_tool, samples_dir, trust_checkpoint_if_asked
from visionmix.evaluation import DigitsScorer
from visionmix.hub import PREFIX, load_model
from visionmix.visualization import save_grid

GRID_PER_CLASS = 10


def evaluate(config: str | None, checkpoint: str, per_class: int = 50, cfg_scales: tuple[float, ...] = (1.0, 3.0),
             sampler: str | None = None, steps: int | None = None, seed: int = 0, out_dir: str | None = None,
             cfg_options: dict | None = None, image_sizes: tuple[int | None, ...] = (None,)) -> list[dict]:
    """Sample ``per_class`` digits of each class at every guidance scale (and image size: None = the trained
    one) and score them. ``checkpoint`` is a local file (with its ``config``) or ``zoo:NAME`` (config optional).
    ``sampler`` and ``steps`` default to the config's ``model.sampling``."""
    model, _ = load_model(checkpoint, config, cfg_options)
    sampler = sampler or model.sampling["sampler"]
    steps = steps or model.sampling["steps"]
    scorer = DigitsScorer.fit()
    labels = torch.arange(10).repeat_interleave(per_class)
    trained = model.backbone.input_size
    rows = []
    for size, scale in ((size, scale) for size in image_sizes for scale in cfg_scales):
        images = model.sample(labels, generator=torch.Generator().manual_seed(seed), cfg_scale=scale,
                              sampler=sampler, steps=steps, size=(size, size) if size else None)
        scored = F.interpolate(images, size=trained, mode="area") if images.shape[-2:] != trained else images
        scores = scorer.score(scored, labels)
        rows.append(dict(image_size=images.shape[-1], cfg_scale=scale, agreement=scores["agreement"],
                         frechet=scores["frechet"], heldout_accuracy=scorer.heldout_accuracy, sampler=sampler,
                         steps=steps))
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            shown = torch.arange(len(labels)) % per_class < GRID_PER_CLASS  # the first ten of each digit
            suffix = f"_{images.shape[-1]}px" if size else ""
            save_grid(images[shown], osp.join(out_dir, f"digits_cfg{scale:g}{suffix}.png"), labels=labels[shown])
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"| size | guidance | agreement with requested digit | Frechet (classifier features) |  "
          f"({rows[0]['sampler']}-{rows[0]['steps']}; "
          f"classifier held-out accuracy {rows[0]['heldout_accuracy']:.1%})")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['image_size']} | {r['cfg_scale']:g} | {r['agreement']:.1%} | {r['frechet']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the config the checkpoint was trained with (optional for zoo:NAME)")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by visionmix train, or zoo:NAME")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--cfg-scales", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--sampler", default=None, help="default: the config's model.sampling.sampler")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's model.sampling.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="config overrides, as in train.py")
    parser.add_argument("--out", default=None, help="folder for the sample grids (default: next to the checkpoint)")
    parser.add_argument("--image-size", type=int, nargs="+", default=[None],
                        help="sample at these sizes (downsampled to the trained size for scoring)")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.config is None and not args.checkpoint.startswith(PREFIX):
        parser.error(f"CONFIG is required with a local checkpoint ({args.checkpoint}); zoo:NAME models bring their own")
    for flag, value in (("--per-class", args.per_class), ("--steps", args.steps)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    trust_checkpoint_if_asked(args)
    out = args.out or samples_dir(args.checkpoint)
    rows = evaluate(args.config, args.checkpoint, args.per_class, tuple(args.cfg_scales), args.sampler,
                    args.steps, args.seed, out, args.cfg_options, tuple(args.image_size))
    print_table(rows)
    print(f"sample grids: {out}/digits_cfg*.png")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
