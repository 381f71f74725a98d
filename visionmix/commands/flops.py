"""Print a markdown table of parameters and GMACs (batch 1, denoiser only) for one or more configs.

    visionmix flops configs/dit/*.py configs/uvit/*.py
    visionmix flops configs/drwkv/drwkv_b2_in256.py --cfg-options model.backbone.mixer=attention

Models are built and counted on the meta device (no weights in memory, no initialisation, no
arithmetic), so even the 700M-parameter configs take well under a second each. A model that cannot
run on meta tensors is counted on real CPU tensors instead, with a note on stderr. Config files
without a ``model`` (``configs/_base_/*``) are skipped with a note on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.config import DictAction

from visionmix import build_model
from visionmix.config import load_config
from visionmix.flops import UncountedOpError, backbone_inputs, count_macs, count_params, meta_model


def measure(config: str, cfg_options: dict | None) -> tuple[int, int, float, str]:
    """(parameters, trainable parameters, GMACs, "HxWxC") of the denoiser of ``config``."""
    return measure_cfg(load_config(config, cfg_options), Path(config).stem)


def measure_cfg(cfg, name: str) -> tuple[int, int, float, str]:
    try:
        model = meta_model(cfg.model)
        backbone = getattr(model, "backbone", model).eval()
        macs = count_macs(backbone, backbone_inputs(backbone))
    except UncountedOpError:
        raise
    except Exception as exc:  # an operator without a meta kernel, a data-dependent shape, ...
        print(f"note: {name} does not run on the meta device ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}); counting on real CPU tensors", file=sys.stderr)
        model = build_model(cfg.model)
        backbone = getattr(model, "backbone", model).eval()
        macs = count_macs(backbone, backbone_inputs(backbone))
    total, trainable = count_params(backbone)
    h, w = backbone.input_size
    return total, trainable, macs / 1e9, f"{h}x{w}x{backbone.in_channels}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="config files (.py or .yaml)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="overrides, e.g. model.backbone.mixer=NAME")
    args = parser.parse_args(argv)
    print("| config | input | params | trainable | GMACs |")
    print("|---|---|---:|---:|---:|")
    failed = []
    for config in args.configs:
        try:
            cfg = load_config(config, args.cfg_options)
            if "model" not in cfg:
                print(f"note: skipped {config}: it defines no model", file=sys.stderr)
                continue
            total, trainable, gmacs, size = measure_cfg(cfg, Path(config).stem)
        except Exception as exc:  # one broken config must not hide the rest of the table
            failed.append(config)
            print(f"error: {config}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"| {Path(config).stem} | {size} | {total:,} | {trainable:,} | {gmacs:.3f} |", flush=True)
    if failed:
        print(f"error: {len(failed)} config(s) failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
