"""Print a markdown table of parameters and GMACs (batch 1, denoiser only) for one or more configs.

    python tools/flops.py configs/dit/*.py configs/uvit/*.py
    python tools/flops.py configs/drwkv/drwkv_b2_in256.py --cfg-options model.backbone.mixer=attention
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from mmengine.config import DictAction

from visionmix import build_model
from visionmix.config import load_config
from visionmix.flops import backbone_inputs, count_macs, count_params


def measure(config: str, cfg_options: dict | None) -> tuple[int, int, float, str]:
    cfg = load_config(config, cfg_options)
    model = build_model(cfg.model)
    backbone = getattr(model, "backbone", model).eval()
    h, w = backbone.input_size
    with torch.no_grad():
        macs = count_macs(backbone, backbone_inputs(backbone))
    total, trainable = count_params(backbone)
    return total, trainable, macs / 1e9, f"{h}x{w}x{backbone.in_channels}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="config files (.py or .yaml)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="overrides, e.g. model.backbone.mixer=NAME")
    args = parser.parse_args(argv)
    print("| config | input | params | trainable | GMACs |")
    print("|---|---|---:|---:|---:|")
    for config in args.configs:
        total, trainable, gmacs, size = measure(config, args.cfg_options)
        print(f"| {Path(config).stem} | {size} | {total:,} | {trainable:,} | {gmacs:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
