"""Score samples the way ADM's evaluation suite does: FID, Inception Score, precision/recall; or the digits check.

    visionmix eval samples/x/samples_50000_cfg1.5.npz --ref VIRTUAL_imagenet256_labeled.npz
    visionmix eval SAMPLES.npz --ref REF.npz --metrics fid,is --batch-size 100 --device cuda
    visionmix eval --checkpoint zoo:dit_xl2_in256 --num 50000 --cfg-scale 1.5 --ref REF.npz  # sample first
    visionmix eval --checkpoint CKPT --config CONFIG --num 10000 --metrics is
    visionmix eval --checkpoint zoo:drwkv_digits --metrics digits       # a model-zoo digits row's figures
    visionmix eval REAL.npz --save-stats my_ref.npz                       # our own reference statistics

Metrics (``--metrics``, comma-separated; default ``fid,is,pr`` with ``--ref``, ``is`` without):

* ``fid``: Fréchet distance between Gaussian fits of Inception pool3 features of the samples and of the reference
  (its ``mu``/``sigma``, else computed from its ``features`` or ``arr_0`` images); biased upwards for small N, so
  compare at equal sample counts (FID-50K is the custom);
* ``is``: Inception Score, mean and std over ``--splits`` parts (10);
* ``pr``: k-NN precision and recall (Kynkäänniemi et al. 2019, k = 3), needs the reference's features or images;
* ``digits``: for class-conditional models of the bundled 8x8 digits, ``visionmix eval-digits``'s protocol with the
  model-zoo settings (unguided and guidance 3, seed 0, the config's sampler, 50 samples per digit unless
  ``--num`` says otherwise): agreement with the requested digit and Frechet distance in its classifier's features.

SAMPLES and REF are ``.npz`` files in ADM's format (``arr_0`` uint8 N x H x W x 3; see
``visionmix.evaluation.reference``). ``--checkpoint`` (a local file with ``--config``, or ``zoo:NAME``) samples
first with ``visionmix sample``'s functions and writes the ``.npz`` where that tool would. The Inception weights are
a local file (``visionmix.evaluation.inception``: ``$VISIONMIX_INCEPTION_WEIGHTS`` or ``~/.cache/visionmix/``);
they and the reference are checked before any sampling. Results are printed as a table and written (atomically)
as JSON next to the samples: ``<samples>_eval.json`` (``digits_eval.json`` beside the digit grids).
Exit codes: 0 done, 1 runtime error (missing file, unreadable batch...), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import json
import math
import os.path as osp
import sys
from typing import Any, Optional, Sequence

from visionmix.cli import (TRUST_HELP, ArgumentParser, CfgOptionsAction, UsageError, run_tool,  # light: no torch
                           samples_dir, trust_checkpoint_if_asked)

# torch, numpy and visionmix's models are imported inside the functions that need them: --help and bad
# arguments answer at once.
ZOO = "zoo:"
METRICS = ("fid", "is", "pr", "digits")
DIGITS_SCALES = (1.0, 3.0)  # the model-zoo protocol: unguided and guidance 3
DIGITS_PER_CLASS = 50
PR_K = 3


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (argparse only: no heavy imports)."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="?", help="an .npz of samples (arr_0: uint8 N x H x W x 3)")
    parser.add_argument("--ref", help="the reference batch .npz (arr_0 images and/or mu, sigma, features)")
    parser.add_argument("--metrics", default=None,
                        help=f"comma-separated, from {','.join(METRICS)} (default: fid,is,pr with --ref, else is)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per Inception (and sampling) batch")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--splits", type=int, default=10, help="Inception Score splits (default 10)")
    parser.add_argument("--inception-weights", default=None,
                        help="the Inception weights file (default: $VISIONMIX_INCEPTION_WEIGHTS, ~/.cache/visionmix/)")
    parser.add_argument("--save-stats", default=None, metavar="PATH",
                        help="also write the samples' mu, sigma and features as a reference .npz")
    parser.add_argument("--json", default=None, help="where to write the results (default: next to the samples)")
    group = parser.add_argument_group("sampling first (instead of SAMPLES)")
    group.add_argument("--checkpoint", help="a checkpoint written by visionmix train, a state dict, or zoo:NAME")
    group.add_argument("--config", help="the config the checkpoint was trained with (optional for zoo:NAME)")
    group.add_argument("--num", type=int, default=None,
                       help="number of samples (required for fid/is/pr; digits: a multiple of 10, default 500)")
    group.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (1 = none)")
    group.add_argument("--steps", type=int, default=None)
    group.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp_2m", "euler", "heun", "ode", "sde"], default=None)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--out", default=None, help="folder for the samples (default: as visionmix sample)")
    group.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE")
    group.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad combinations before anything is imported, read or sampled; fills ``args.metrics`` (a list)."""
    names = args.metrics.split(",") if args.metrics is not None else (["fid", "is", "pr"] if args.ref else ["is"])
    names = [m.strip().lower() for m in names if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UsageError(f"--metrics: unknown {', '.join(unknown) or 'empty list'}; choose from {','.join(METRICS)}")
    args.metrics = list(dict.fromkeys(names))
    for flag, value in (("--batch-size", args.batch_size), ("--splits", args.splits), ("--num", args.num),
                        ("--steps", args.steps)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.cfg_scale is not None and not (math.isfinite(args.cfg_scale) and args.cfg_scale >= 0):
        raise UsageError(f"--cfg-scale must be a finite number >= 0 (1 = no guidance), got {args.cfg_scale}")
    if (args.samples is None) == (args.checkpoint is None):
        raise UsageError("give either SAMPLES.npz or --checkpoint CKPT (which samples first), not "
                         + ("both" if args.samples else "neither"))
    if args.checkpoint is None:
        used = [f for f, v in (("--config", args.config), ("--num", args.num), ("--cfg-scale", args.cfg_scale),
                               ("--steps", args.steps), ("--sampler", args.sampler), ("--out", args.out)) if v]
        if used:
            raise UsageError(f"{', '.join(used)} only apply with --checkpoint (sampling first)")
    elif not args.checkpoint.startswith(ZOO):
        if args.config is None:
            raise UsageError(f"--config is required with a local checkpoint ({args.checkpoint}); "
                             f"{ZOO}NAME models bring their own")
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f"checkpoint not found: {osp.abspath(osp.expanduser(args.checkpoint))}")
    if "digits" in args.metrics:
        if len(args.metrics) > 1 or args.checkpoint is None:
            raise UsageError("--metrics digits samples its own digits: use it alone, with --checkpoint")
        extra = [f for f, v in (("--ref", args.ref), ("--save-stats", args.save_stats),
                                ("--cfg-scale", args.cfg_scale)) if v is not None]
        if extra:
            raise UsageError(f"--metrics digits scores guidance 1 and 3 against the bundled digits: drop "
                             f"{', '.join(extra)}")
        if args.num is not None and args.num % 10:
            raise UsageError(f"--num for digits is split evenly over the 10 digits: give a multiple of 10, "
                             f"got {args.num}")
        return
    if args.ref is None and ({"fid", "pr"} & set(args.metrics)):
        raise UsageError(f"--metrics {','.join(args.metrics)} needs --ref REF.npz (only 'is' needs no reference)")
    if args.checkpoint is not None and args.num is None:
        raise UsageError("--checkpoint needs --num N, the number of samples to draw (50000 for FID-50K)")
    if args.num is not None and args.num < least_samples(args):
        raise UsageError(f"--num {args.num} is too few for --metrics {','.join(args.metrics)}: it needs at least "
                         f"{least_samples(args)} samples (FID 2, IS one per split, precision/recall k+1 = {PR_K + 1})")


def least_samples(args: argparse.Namespace) -> int:
    """The fewest samples the requested metrics are defined for."""
    return max([2] * ("fid" in args.metrics) + [args.splits] * ("is" in args.metrics)
               + [PR_K + 1] * ("pr" in args.metrics), default=1)


def write_json(path: str, data: dict) -> None:
    """``data`` as JSON at ``path``, whole or not at all (a temporary file in the same folder, then a rename)."""
    from visionmix.atomic_write import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


def sample_first(args: argparse.Namespace) -> str:
    """Sample ``--num`` images with visionmix sample's functions; the path of the ``.npz`` it writes."""
    import torch

    from visionmix.hub import load_model

    from . import sample

    ns = argparse.Namespace(num=args.num, labels=None, seed=args.seed, batch_size=args.batch_size, device=args.device)
    overrides = {k: v for k, v in dict(cfg_scale=args.cfg_scale, steps=args.steps, sampler=args.sampler).items()
                 if v is not None}

    def scale_of(model: Any) -> float:
        return overrides.get("cfg_scale", model.sampling["cfg_scale"])

    model, info = load_model(args.checkpoint, args.config, args.cfg_options,
                             before_load=lambda built: sample.check_labels(ns, built, scale_of(built)))
    model.to(args.device).eval()
    out_dir = args.out or samples_dir(args.checkpoint)
    sample.check_output_size(model, args.num, out_dir)
    with torch.no_grad():
        arr, labels = sample.sample_all(ns, model, overrides, 0, 1)
    npz, _ = sample.write_outputs(out_dir, f"samples_{args.num}_cfg{scale_of(model)}", arr, labels)
    print(f"wrote {npz} ({arr.shape})")
    return npz


def score(args: argparse.Namespace) -> dict:
    """FID / IS / precision-recall of ``args.samples`` (sampled first with ``--checkpoint``): the JSON record."""
    from visionmix.evaluation.frechet import frechet_distance, gaussian_stats
    from visionmix.evaluation.inception import POOL_DIM, InceptionFeatures
    from visionmix.evaluation.inception_score import inception_score
    from visionmix.evaluation.precision_recall import precision_recall
    from visionmix.evaluation.reference import complete_reference, load_batch, load_reference, save_reference

    images = load_batch(args.samples)[0] if args.samples else None
    # a missing weights file, torch-fidelity or reference fails here, before hours of sampling
    inception = InceptionFeatures(args.inception_weights, args.device)
    ref = load_reference(args.ref) if args.ref and {"fid", "pr"} & set(args.metrics) else None
    if ref is not None:
        width = len(ref.mu) if ref.mu is not None else ref.features.shape[1] if ref.features is not None else POOL_DIM
        if width != POOL_DIM:
            raise ValueError(f"{args.ref}: its statistics are {width}-dimensional, Inception pool3 features "
                             f"{POOL_DIM}-dimensional: not an Inception reference")
        if "pr" in args.metrics and ref.features is None and not ref.has_images:
            raise ValueError(f"{args.ref} has statistics (mu/sigma) but neither images (arr_0) nor features: "
                             "precision/recall need one of them; drop 'pr' from --metrics or use a reference "
                             "with images")
    samples = args.samples
    if images is None:
        samples = sample_first(args)
        images = load_batch(samples)[0]
    least = least_samples(args)
    if len(images) < least:
        raise ValueError(f"{samples} has {len(images)} images; --metrics {','.join(args.metrics)} needs at least "
                         f"{least} (FID 2, IS one per split, precision/recall k+1 = {PR_K + 1})")
    feats = inception(images, args.batch_size, desc="samples")
    record: dict[str, Any] = dict(samples=osp.abspath(samples), num_samples=len(images),
                                  image_size=list(images.shape[1:3]), reference=None, metrics={},
                                  inception_weights=str(inception.weights_path))
    metrics = record["metrics"]
    if args.save_stats:
        save_reference(args.save_stats, features=feats["pool"])
        print(f"wrote {args.save_stats} (mu, sigma, features of {len(images)} images)")
    if ref is not None:
        record["reference"] = ref.describe()  # what the file offered, before anything is computed from it
        ref = complete_reference(ref, lambda x: inception(x, args.batch_size, desc="reference")["pool"],
                                 need_features="pr" in args.metrics)
    if "fid" in args.metrics:
        metrics["fid"] = frechet_distance(*gaussian_stats(feats["pool"]), ref.mu, ref.sigma)
    if "is" in args.metrics:
        metrics["inception_score"], metrics["inception_score_std"] = inception_score(feats["logits"], args.splits)
        record["is_splits"] = args.splits
    if "pr" in args.metrics:
        metrics.update(precision_recall(ref.features, feats["pool"], k=PR_K, device=args.device))
        record["pr_k"] = PR_K
    return record


def print_scores(record: dict) -> None:
    h, w = record["image_size"]
    print(f"samples: {record['samples']} ({record['num_samples']} images, {h}x{w})")
    if record["reference"]:
        print(f"reference: {record['reference']}")
    m = record["metrics"]
    rows = []
    if "fid" in m:
        rows.append((f"FID ({record['num_samples']} samples)", f"{m['fid']:.3f}"))
    if "inception_score" in m:
        splits = record["is_splits"]
        rows.append((f"Inception Score ({splits} split{'s' * (splits != 1)})",
                     f"{m['inception_score']:.2f} ± {m['inception_score_std']:.2f}"))
    if "precision" in m:
        rows += [(f"precision (k={record['pr_k']})", f"{m['precision']:.4f}"),
                 (f"recall (k={record['pr_k']})", f"{m['recall']:.4f}")]
    if rows:
        print("| metric | value |\n|---|---:|")
        for name, value in rows:
            print(f"| {name} | {value} |")


def score_digits(args: argparse.Namespace) -> tuple[dict, str]:
    """visionmix eval-digits's protocol with the model zoo's settings; the JSON record and the grid folder."""
    from . import eval_digits

    per_class = args.num // 10 if args.num else DIGITS_PER_CLASS
    out = args.out or samples_dir(args.checkpoint)
    rows = eval_digits.evaluate(args.config, args.checkpoint, per_class, DIGITS_SCALES, args.sampler, args.steps,
                                args.seed, out, args.cfg_options)
    by_scale = {r["cfg_scale"]: r for r in rows}
    metrics = dict(agreement=by_scale[1.0]["agreement"], agreement_cfg3=by_scale[3.0]["agreement"],
                   frechet=by_scale[1.0]["frechet"], frechet_cfg3=by_scale[3.0]["frechet"])
    record = dict(checkpoint=args.checkpoint, config=args.config, samples=10 * per_class, seed=args.seed,
                  sampler=f"{rows[0]['sampler']}-{rows[0]['steps']}", metrics=metrics,
                  classifier_heldout_accuracy=rows[0]["heldout_accuracy"], rows=rows)
    return record, out


def print_digits(record: dict) -> None:
    m = record["metrics"]
    print(f"{record['checkpoint']}: {record['samples']} digits per guidance scale, {record['sampler']}, "
          f"seed {record['seed']} (classifier held-out accuracy {record['classifier_heldout_accuracy']:.1%})")
    print("| agreement, unguided | guidance 3 | Frechet, unguided / guidance 3 |\n|---:|---:|---:|")
    print(f"| {m['agreement']:.1%} | {m['agreement_cfg3']:.1%} | {m['frechet']:.2f} / {m['frechet_cfg3']:.2f} |")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Validate, (sample,) score, print, write JSON; errors are raised for :func:`visionmix.cli.run_tool`."""
    args = parse_args(argv)
    check_args(args)
    trust_checkpoint_if_asked(args)
    if "digits" in args.metrics:
        record, out = score_digits(args)
        print_digits(record)
        path = args.json or osp.join(out, "digits_eval.json")
    else:
        import torch

        args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        record = score(args)
        print_scores(record)
        stem = record["samples"][:-4] if record["samples"].endswith(".npz") else record["samples"]
        path = args.json or f"{stem}_eval.json"
    write_json(path, record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
