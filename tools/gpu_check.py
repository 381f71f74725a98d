"""GPU acceptance check, one script (about 5 minutes on one GPU; ``make gpu-check``).

    python tools/gpu_check.py                         # every section, log in work_dirs/gpu_check/gpu_check.log
    python tools/gpu_check.py --sections wkv,mixers   # a subset (build always runs first when wkv is asked)

Sections, each run even when an earlier one failed, each PASS or FAIL in the summary at the end:

- build: the native Bi-WKV op with its CUDA kernels (visionmix.ops.loader: prebuilt module or JIT build).
- wkv: the CUDA op against the CPU op on random inputs: y and the gradients of w, u, k, v; fp32 and bf16
  k/v/y; T from 1 to 16384; odd C. The oracle is the CPU op in float64 on the same (rounded) inputs; a
  CUDA error (max |diff| / max |oracle|) passes when it is within max(tolerance, 4 x the CPU op's error).
- mixers: every registered mixer (its ``layout``'s input) forward+backward on CUDA against CPU, same
  weights, fp32 with TF32 off, 9x7 grid: output, input gradient and every weight gradient within 1e-3.
- train: configs/quickstart/drwkv_digits8.py for ``--iters`` (200) iterations with bf16 autocast, through
  tools/train.py's own path (parse_args, apply_args --amp, VisionMixRunner); the loss stays finite and its
  last 20 iterations average below its first 20.
- benchmark: tools/benchmark.py --device cuda (outputs in work_dirs/gpu_check/benchmark/).

The checks run in a child process whose whole output (compiler, runner, tracebacks) the parent copies to
the console and to the log; a child that crashes or outlives ``--timeout`` fails the run. The exit status
is 1 if any section failed. Without CUDA the script says so and exits 0.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("work_dirs/gpu_check")
QUICKSTART = ROOT / "configs/quickstart/drwkv_digits8.py"
SECTIONS = ("build", "wkv", "mixers", "train", "benchmark")
WKV_CASES = [(2, 1, 37), (2, 31, 37), (3, 1000, 37), (1, 4097, 129), (2, 16384, 129)]  # (B, T, C)
WKV_TOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
MIXER_TOL = 1e-3


def tool(name: str):
    """The command ``name`` (``visionmix <name>``) as a module."""
    return importlib.import_module(f"visionmix.commands.{name}")


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x - ref| / max(max |ref|, 1e-2): the data are O(1), the floor keeps exact zeros (dk at T=1)
    from turning round-off into huge ratios; inf if x is not finite."""
    x, ref = x.double().cpu(), ref.double().cpu()
    if not torch.isfinite(x).all():
        return math.inf
    return float((x - ref).abs().max() / ref.abs().max().clamp_min(1e-2))  # O(1) data: 1e-2 floors exact zeros


# --------------------------------------------------------------------------------------------- sections


def check_build() -> str:
    import visionmix.ops as ops

    if not ops.loader.wants_cuda():
        raise RuntimeError(f"no CUDA toolkit for the JIT build (CUDA_HOME={ops.loader.cuda_home()})")
    if ops.native_build_error():
        print(f"build failed: {ops.native_build_error()}; building again verbosely for the log", flush=True)
        ops.loader.load_native.cache_clear()
        ops.loader.load_native(verbose=True)  # raises with the compiler's output
    k = torch.randn(1, 8, 3, device="cuda")
    y = ops._bi_wkv_op(torch.zeros(3, device="cuda"), torch.zeros(3, device="cuda"), k, k)[0]
    torch.cuda.synchronize()
    return f"native op built with CUDA kernels, smoke call {tuple(y.shape)} on {y.device}"


def wkv_inputs(B: int, T: int, C: int, dtype: torch.dtype, seed: int) -> List[torch.Tensor]:
    """w, u (fp32), k, v, g rounded to ``dtype``, all returned in float64."""
    gen = torch.Generator().manual_seed(seed)
    w = (torch.rand(C, generator=gen) * 2 - 1) * 8.0 / T
    u = torch.randn(C, generator=gen) * 0.5
    kvg = [torch.randn(B, T, C, generator=gen).to(dtype) for _ in range(3)]
    return [x.double() for x in (w, u, *kvg)]


def wkv_run(inputs: List[torch.Tensor], device: str, dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    from visionmix.ops import bi_wkv

    acc = torch.float64 if dtype == torch.float64 else torch.float32
    w, u, k, v, g = inputs
    leaves = [x.detach().to(device, t) for x, t in ((w, acc), (u, acc), (k, dtype), (v, dtype))]
    leaves = [x.requires_grad_() for x in leaves]
    y = bi_wkv(*leaves)
    y.backward(g.to(device, y.dtype))
    return {"y": y.detach(), **{name: x.grad for name, x in zip("wukv", leaves)}}


def check_wkv() -> str:
    old = os.environ.get("VISIONMIX_WKV_BACKEND")
    os.environ["VISIONMIX_WKV_BACKEND"] = "native"  # a missing native op must fail, not fall back
    try:
        return compare_wkv()
    finally:
        if old is None:
            del os.environ["VISIONMIX_WKV_BACKEND"]
        else:
            os.environ["VISIONMIX_WKV_BACKEND"] = old


def compare_wkv(device: str = "cuda", cases: List[Tuple[int, int, int]] = WKV_CASES) -> str:
    failures, worst = [], 0.0
    for B, T, C in cases:
        for dtype in (torch.float32, torch.bfloat16):
            inputs = wkv_inputs(B, T, C, dtype, seed=T + C)
            ref = wkv_run(inputs, "cpu", torch.float64)
            cpu, gpu = wkv_run(inputs, "cpu", dtype), wkv_run(inputs, device, dtype)
            errs = {q: (rel_err(gpu[q], ref[q]), rel_err(cpu[q], ref[q])) for q in ref}
            print(f"B={B} T={T} C={C} {str(dtype)[6:]}: " + ", ".join(
                f"{q} cuda {e:.1e} cpu {c:.1e}" for q, (e, c) in errs.items()), flush=True)
            for q, (e, c) in errs.items():
                worst = max(worst, e)
                if not e <= max(WKV_TOL[dtype], 4 * c):
                    failures.append(f"{q} at B={B} T={T} C={C} {dtype}: {e:.2e} (cpu {c:.2e})")
    if failures:
        raise AssertionError("; ".join(failures))
    return f"{len(cases) * 2} cases, y and dw du dk dv, largest CUDA error {worst:.1e}"


def mixer_grads(mixer: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> Dict[str, torch.Tensor]:
    x = x.clone().requires_grad_()
    out = mixer(x, (9, 7))
    out.backward(g)
    return {"out": out.detach(), "x.grad": x.grad, **{n: p.grad for n, p in mixer.named_parameters()
                                                     if p.grad is not None}}


def check_mixers(device: str = "cuda") -> str:
    from visionmix.registry import MIXERS, build, list_mixers

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    failures, worst = [], {}
    for name in list_mixers():
        try:
            torch.manual_seed(0)
            cpu = build(MIXERS, name, dim=64, num_heads=4, layer_id=1, num_layers=4)
            with torch.no_grad():  # break zero inits, so that every path carries signal
                for p in cpu.parameters():
                    p.add_(0.02 * torch.randn_like(p))
            gpu = copy.deepcopy(cpu).to(device)
            shape = (2, 64, 9, 7) if cpu.layout == "grid" else (2, 63, 64)
            x, g = torch.randn(shape), torch.randn(shape)
            ref, got = mixer_grads(cpu, x, g), mixer_grads(gpu, x.to(device), g.to(device))
            errs = {k: rel_err(got[k], ref[k]) for k in ref}
            worst[name] = max(errs.values())
            print(f"{name}: worst {max(errs, key=errs.get)} {worst[name]:.1e}", flush=True)
            failures += [f"{name} {k} {e:.1e}" for k, e in errs.items() if not e <= MIXER_TOL]
            failures += [f"{name}: no gradient on CUDA for {k}" for k in ref.keys() - got.keys()]
        except Exception as err:  # noqa: BLE001 - one broken mixer must not hide the others
            traceback.print_exc()
            failures.append(f"{name}: {type(err).__name__}: {err}")
    if failures:
        raise AssertionError("; ".join(failures))
    return ", ".join(f"{n} {e:.0e}" for n, e in worst.items())


def check_train(iters: int) -> str:
    from visionmix.config import load_config
    from visionmix.engine import VisionMixRunner

    train = tool("train")
    args = train.parse_args([str(QUICKSTART), "--amp", "--overwrite", "--work-dir", str(WORK / "train"),
                             "--cfg-options", f"train_cfg.max_iters={iters}", "default_hooks.logger.interval=20"])
    runner = VisionMixRunner.from_cfg(train.apply_args(load_config(args.config, args.cfg_options), args))
    runner.train()
    wrapper = type(runner.optim_wrapper).__name__  # built by train()
    losses = [float(x) for x in runner.message_hub.get_scalar("train/loss").data[0]]
    if len(losses) < iters or not all(math.isfinite(x) for x in losses):
        raise AssertionError(f"{len(losses)} losses recorded, finite: {all(map(math.isfinite, losses))}")
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    if not (last < first and "Amp" in wrapper):
        raise AssertionError(f"loss {first:.4f} -> {last:.4f} with {wrapper}")
    return f"{iters} iterations with {wrapper} (bf16): mean loss {first:.4f} (first 20) -> {last:.4f} (last 20)"


def check_benchmark() -> str:
    import csv

    out = WORK / "benchmark"
    code = tool("benchmark").main(["--device", "cuda", "--reps", "5", "--max-seconds", "20", "--out", str(out)])
    with open(out / "benchmark.csv") as f:
        rows = list(csv.reader(f))
    missing = [r[0] for r in rows[1:] if not r[1]]
    if code or missing:
        raise AssertionError(f"exit {code}; no time at the smallest grid for {missing}")
    return f"{len(rows) - 1} mixer variants, table in {out / 'benchmark.md'}"


# ------------------------------------------------------------------------------------------ the driver


def run_sections(names: List[str], iters: int) -> List[Tuple[str, bool, str, float]]:
    checks: Dict[str, Callable[[], str]] = {"build": check_build, "wkv": check_wkv, "mixers": check_mixers,
                                            "train": lambda: check_train(iters), "benchmark": check_benchmark}
    results = []
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        start = time.time()
        try:
            ok, detail = True, checks[name]()
        except Exception as err:  # noqa: BLE001 - every section runs and is reported
            traceback.print_exc()
            ok, detail = False, f"{type(err).__name__}: {str(err)[:600]}"
        results.append((name, ok, detail, time.time() - start))
        print(f"----- {name}: {'PASS' if ok else 'FAIL'} ({results[-1][3]:.0f} s): {detail}", flush=True)
    return results


def child(args: argparse.Namespace) -> int:
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    results = run_sections(args.sections, args.iters)
    print("\n===== summary =====")
    for name, ok, detail, seconds in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<10} {seconds:6.0f} s  {detail}")
    failed = [name for name, ok, _, _ in results if not ok]
    print(f"gpu_check: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}", flush=True)
    return 1 if failed else 0


def parent(args: argparse.Namespace, argv: List[str]) -> int:
    """Run the checks in a child, copying its output to the console and the log; enforce --timeout."""
    args.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    with open(args.log, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=os.getcwd())
        timer = threading.Timer(args.timeout, proc.kill)
        timer.start()
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
        timer.cancel()
        if code not in (0, 1):
            note = f"\ngpu_check: FAIL, the checks died (exit {code}; killed after --timeout {args.timeout} s?)\n"
            sys.stdout.write(note)
            log.write(note)
    print(f"log: {args.log}")
    return 0 if code == 0 else 1


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--iters", type=int, default=200, help="training iterations of the train section")
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds before the checks are killed")
    parser.add_argument("--log", type=Path, default=WORK / "gpu_check.log")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sections = [s for s in SECTIONS if s in args.sections.split(",")]
    if "wkv" in args.sections and "build" not in args.sections:
        args.sections.insert(0, "build")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not torch.cuda.is_available():
        message = "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to check, exit 0"
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text(message + "\n")
        print(message)
        return 0
    return child(args) if args.child else parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
