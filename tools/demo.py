"""What ``make demo`` shows: the quickstart Diffusion-RWKV trained on the bundled digits on this CPU, its
class-conditional samples scored with and without guidance, and the params/GMACs table of the scaffold family.

    python tools/demo.py [--iters N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import visionmix
from visionmix.commands import eval_digits, train
from visionmix.commands.flops import measure

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/quickstart/drwkv_digits8.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    parser.add_argument("--work-dir", default=str(ROOT / "work_dirs/quickstart_drwkv_digits8"))
    args = parser.parse_args(argv)
    print(f"visionmix {visionmix.__version__}; token mixers: {', '.join(visionmix.list_mixers())}\n")

    start = time.perf_counter()
    options = [f"train_cfg.max_iters={args.iters}"] if args.iters else []
    # a rerun of the demo starts again: --overwrite moves the previous run's checkpoints aside (nothing is deleted)
    code = train.main([str(CONFIG), "--work-dir", args.work_dir, "--overwrite"]
                      + (["--cfg-options", *options] if options else []))
    if code:
        return code
    minutes = (time.perf_counter() - start) / 60
    checkpoint = Path(args.work_dir, (Path(args.work_dir) / "last_checkpoint").read_text().strip()).resolve()
    print(f"\ntrained in {minutes:.1f} min -> {checkpoint}; scoring 300 class-conditional samples ...")

    # the config's sampler: ancestral DDPM with the learned variance, as the model was trained for
    rows = eval_digits.evaluate(str(CONFIG), str(checkpoint), per_class=30, cfg_scales=(1.0, 3.0),
                                out_dir=str(Path(args.work_dir) / "samples"))
    print()
    eval_digits.print_table(rows)
    print(f"sample grids: {args.work_dir}/samples/ (digits_cfg1.png, digits_cfg3.png, iter_*.png)\n")

    print("| config | input | params | trainable | GMACs |\n|---|---|---:|---:|---:|")
    for name in ("quickstart/drwkv_digits8", "drwkv/drwkv_b2_in256"):
        total, trainable, gmacs, size = measure(str(ROOT / "configs" / f"{name}.py"), None)
        print(f"| {Path(name).name} | {size} | {total:,} | {trainable:,} | {gmacs:.3f} |", flush=True)
    print("\nthe same digits model with every other mixer, trained and scored: model_zoo.md; sample one with\n"
          "    visionmix sample --checkpoint zoo:rala_digits --num 20 --cfg-scale 3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
