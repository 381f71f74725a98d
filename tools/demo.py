"""What ``make demo`` shows: a DiT-S/2 denoiser built from its config, one forward pass, and the flops table
for it and its scaffold siblings.

    python tools/demo.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flops import measure  # noqa: E402

import visionmix  # noqa: E402
from visionmix.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    print(f"visionmix {visionmix.__version__}; token mixers: {', '.join(visionmix.list_mixers())}\n")
    config = ROOT / "configs/dit/dit_s2_in256.py"
    model = visionmix.build_model(load_config(config).model).eval()
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    t, y = torch.tensor([999, 10]), torch.tensor([207, 360])
    start = time.perf_counter()
    with torch.no_grad():
        out = model(x, t, y, mode="tensor")
    print(f"DiT-S/2 forward: x {tuple(x.shape)} t {t.tolist()} y {y.tolist()} -> {tuple(out.shape)} "
          f"in {1e3 * (time.perf_counter() - start):.0f} ms; max |out| = {out.abs().max():.3g} "
          "(exactly 0: adaLN-Zero starts every block and the head at zero)\n")
    print("| config | input | params | trainable | GMACs |\n|---|---|---:|---:|---:|")
    for name in ("dit/dit_s2_in256", "dit/dit_b4_in256", "uvit/uvit_h2_in256"):
        total, trainable, gmacs, size = measure(str(ROOT / "configs" / f"{name}.py"), None)
        print(f"| {Path(name).name} | {size} | {total:,} | {trainable:,} | {gmacs:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
