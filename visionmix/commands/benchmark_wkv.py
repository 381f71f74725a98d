"""Benchmark the Bi-WKV operator: native kernels vs the PyTorch fallback vs the dense oracle.

Every time is also given as a multiple of one ``torch.exp(x, out=buf)`` pass over a preallocated
(B, T, C) tensor measured in the same run, which takes the machine's speed (and memory bandwidth)
out of the comparison. Prints a markdown table.

The exp pass writes into a preallocated buffer; the operator has to allocate its outputs. glibc
serves every block over 32 MiB with a fresh mmap and unmaps it on free, so at T=16384 (50 MB
tensors) each call would also pay the kernel's page faults and zeroing for every output page
(about 60% of the forward's time here), which measures the allocator rather than the operator.
The benchmark therefore asks glibc to keep freed memory (``mallopt``), as a caching allocator
would; ``--system-malloc`` leaves the default policy in place for comparison.

    visionmix benchmark-wkv            # T in 256, 1024, 4096, 16384
    visionmix benchmark-wkv --quick    # T in 256, 1024, 4096, fewer repeats
"""
from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Optional

import torch

import visionmix.ops as ops
from visionmix.benchmarking import best_times, keep_freed_memory

MEMORY_LIMIT = 4 * 2**30  # skip a path whose estimated working memory exceeds this


def make_inputs(B: int, T: int, C: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w": (torch.rand(C, generator=gen) * 2 - 1) * 8.0 / T,  # |w| T <= 8, as after the /T scaling
        "u": torch.randn(C, generator=gen) * 0.5,
        "k": torch.randn(B, T, C, generator=gen),
        "v": torch.randn(B, T, C, generator=gen),
        "g": torch.randn(B, T, C, generator=gen),
    }


def forward_fn(op: Callable, x: Dict[str, torch.Tensor]) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return op(x["w"], x["u"], x["k"], x["v"])

    return run


def train_fn(op: Callable, x: Dict[str, torch.Tensor]) -> Callable[[], object]:
    leaves = [x[n].clone().requires_grad_() for n in ("w", "u", "k", "v")]

    def run() -> object:
        for leaf in leaves:
            leaf.grad = None
        op(*leaves).backward(x["g"])
        return leaves[2].grad

    return run


def estimated_bytes(path: str, B: int, T: int, C: int, train: bool) -> int:
    if path == "dense":  # (B, T, T, C) logits, probabilities, product; more kept for backward
        return B * T * T * C * 4 * (6 if train else 3)
    if path == "torch":  # (B, T / L, L, L, C) blocks with L = 64
        return B * T * 64 * C * 4 * (8 if train else 4)
    return 0


def dense32(w, u, k, v):
    return ops.bi_wkv_dense(w, u, k, v, dtype=torch.float32)


PATHS = {"native": lambda w, u, k, v: ops._bi_wkv_op(w, u, k, v)[0].to(k.dtype),
         "torch": ops.bi_wkv_torch, "dense": dense32}


def bench_length(B: int, T: int, C: int, reps: int, paths: List[str]) -> Dict[str, Optional[float]]:
    x = make_inputs(B, T, C)
    src, buf = torch.randn(B, T, C), torch.empty(B, T, C)
    fast: Dict[str, Callable[[], object]] = {"exp": lambda: torch.exp(src, out=buf)}
    slow: Dict[str, Callable[[], object]] = {}
    skipped: List[str] = []
    for path in paths:
        for train in (False, True):
            key = f"{path} {'fwd+bwd' if train else 'fwd'}"
            if estimated_bytes(path, B, T, C, train) > MEMORY_LIMIT:
                skipped.append(key)
                continue
            fn = (train_fn if train else forward_fn)(PATHS[path], x)
            (fast if path == "native" else slow)[key] = fn
    row: Dict[str, Optional[float]] = dict(best_times(fast, reps))
    row.update(best_times(slow, 1))  # the reference paths are slow: one timed run
    row.update({key: None for key in skipped})
    order = ["exp"] + [f"{p} {m}" for p in paths for m in ("fwd", "fwd+bwd")]
    return {key: row[key] for key in order}


def render(rows: Dict[int, Dict[str, Optional[float]]]) -> str:
    keys = [k for k in next(iter(rows.values())) if k != "exp"]
    head = "| T | exp pass (ms) | " + " | ".join(f"{k} ms (x exp)" for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for T, row in rows.items():
        cells = [f"{T}", f"{row['exp'] * 1e3:.2f}"]
        for key in keys:
            t = row[key]
            cells.append("skipped (memory)" if t is None else f"{t * 1e3:.1f} ({t / row['exp']:.1f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T in 256..4096, fewer repeats")
    parser.add_argument("--lengths", type=int, nargs="*", help="override the sequence lengths")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=384)
    parser.add_argument("--reps", type=int, default=None, help="timed repeats of the native op")
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default policy (fresh mmap per block over 32 MiB)")
    args = parser.parse_args(argv)
    allocator = "system malloc (default policy)" if args.system_malloc else keep_freed_memory()
    lengths = args.lengths or ([256, 1024, 4096] if args.quick else [256, 1024, 4096, 16384])
    reps = args.reps or (5 if args.quick else 15)
    if "native" in args.paths and ops.native_build_error() is not None:
        raise SystemExit(f"native extension unavailable: {ops.native_build_error()}")
    print(f"Bi-WKV, B={args.batch}, C={args.channels}, fp32, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, best of {reps} (native), "
          f"{allocator}\n")
    rows = {T: bench_length(args.batch, T, args.channels, reps, args.paths) for T in lengths}
    print(render(rows))
    if "native" in args.paths and 4096 in rows and 16384 in rows:
        norm = {T: rows[T]["native fwd+bwd"] / rows[T]["exp"] for T in (4096, 16384)}
        print(f"\nnative fwd+bwd, normalised cost T=16384 / T=4096: {norm[16384] / norm[4096]:.2f}")


if __name__ == "__main__":
    main()
