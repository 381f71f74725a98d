"""Timing, peak-memory, mixer-spec and report helpers of visionmix benchmark, compare.py, benchmark_wkv.py.

Timing (:func:`times_in_turns`): candidates run round-robin within every repetition, so load elsewhere on
the host hits them alike. Peak memory of one call (:func:`peak_memory`): on CUDA ``max_memory_allocated``
above what was allocated before the call; on CPU :class:`LiveTensorBytes`, a ``TorchDispatchMode`` that adds
the storage of every tensor an operator creates (views and in-place results of its arguments excluded) and
subtracts it when a weakref finaliser sees that storage freed: the peak of live tensor bytes during the call,
backward included, which a caching allocator would have to hold, independent of glibc's page policy and of
what the process held before (peak RSS is neither); scratch memory inside one kernel is not seen.
Mixer specs ``name[:key=value,...][:math]`` (:func:`parse_specs`); ``math`` runs softmax attention through
``sdpa_kernel(SDPBackend.MATH)``, its unfused reference path.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import ctypes.util
import gc
import math
import statistics
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .cli import UsageError
from .registry import MIXERS, check_options, resolve_type
from .registry import parse_spec as registry_parse_spec

Device = Union[str, torch.device]


# ----------------------------------------------------------------------------------------- allocator
def keep_freed_memory() -> str:
    """Make glibc serve large blocks from its heap and never hand freed memory back, so that a
    repeated call finds its output pages already mapped. Returns a description of the policy."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    if mallopt is None or not (mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 2**31 - 1)):
        return "system malloc (mallopt unavailable)"
    return "glibc malloc keeping freed memory (no mmap, no trim)"


# -------------------------------------------------------------------------------------------- timing
def synchronize(device: Device) -> None:
    if torch.device(device).type == "cuda":  # CPU work is done when the call returns
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: Device = "cpu") -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def times_in_turns(fns: Dict[str, Callable[[], object]], reps: int, device: Device = "cpu",
                   warmup: int = 1, reduce: Callable[[List[float]], float] = statistics.median) -> Dict[str, float]:
    """``reduce`` over ``reps`` timed calls of each function, after ``warmup`` untimed ones. The functions
    take turns within every repetition (round-robin), so that load elsewhere hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, device))
    return {name: reduce(ts) for name, ts in samples.items()}


def best_times(fns: Dict[str, Callable[[], object]], reps: int) -> Dict[str, float]:
    """Fastest of ``reps`` runs of each function, in seconds, after one warm-up, taken in turns."""
    return times_in_turns(fns, reps, warmup=1, reduce=min)


def train_step(forward: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
               context: Callable[[], ContextManager] = contextlib.nullcontext) -> Callable[[], None]:
    """One forward + backward of ``forward()`` against a fixed random output gradient (made on the first
    call); gradients of ``params`` (weights and input leaves) are reset to None before every call, as
    ``zero_grad(set_to_none=True)`` does, so each call allocates them anew."""
    grad: List[torch.Tensor] = []

    def step() -> None:
        for p in params:
            p.grad = None
        with context():
            out = forward()
        if not grad:
            grad.append(torch.randn_like(out))
        out.backward(grad[0])

    return step


# -------------------------------------------------------------------------------------------- memory
class LiveTensorBytes(TorchDispatchMode):
    """Within the mode: ``current`` / ``peak`` bytes of the live storages that operators created."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: Dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {x.untyped_storage().data_ptr() for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)}
        for leaf in tree_leaves(out):  # a view or in-place result of an argument (a weight's .t()) is not new
            if isinstance(leaf, torch.Tensor) and leaf.untyped_storage().data_ptr() not in given:
                self._track(leaf.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)  # the Python storage object lives as long as its StorageImpl (views share it)
        if key in self.sizes:
            return
        self.sizes[key] = storage.nbytes()
        self.current += self.sizes[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.sizes.pop(key, 0)


def peak_memory(fn: Callable[[], object], device: Device = "cpu") -> int:
    """Peak bytes allocated during one call of ``fn`` above what was allocated before it (see module doc)."""
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with LiveTensorBytes() as mode:
        fn()
    return mode.peak


def memory_method(device: Device) -> str:
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated above the resident weights and inputs"
    return "peak of live tensor bytes created by operators (TorchDispatchMode), weights and inputs excluded"


# --------------------------------------------------------------------------------------- mixer specs
@dataclass(frozen=True)
class MixerSpec:
    """A registered mixer, its options and whether softmax attention runs through the math path."""

    name: str
    options: Tuple[Tuple[str, Any], ...] = ()
    math: bool = False

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.options] + (["math"] if self.math else [])
        return self.name + (":" + ",".join(parts) if parts else "")

    def config(self) -> Union[str, Dict[str, Any]]:
        """What ``backbone.mixer`` is assigned: the bare name, or a dict with ``type`` and the options."""
        return {"type": self.name, **dict(self.options)} if self.options else self.name

    def context(self) -> ContextManager:
        if not self.math:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)


def parse_spec(text: str) -> MixerSpec:
    """``"retnet:decomposed=True"`` -> MixerSpec("retnet", (("decomposed", True),)); a ``math`` piece among the
    options selects the math attention path (the rest is the registry's ``name:key=value`` form)."""
    name, _, rest = text.strip().partition(":")
    pieces = [p.strip() for p in rest.split(",") if p.strip()]
    math_path = "math" in pieces
    cfg = registry_parse_spec(":".join([name, ",".join(p for p in pieces if p != "math")]))
    return MixerSpec(cfg.pop("type"), tuple(cfg.items()), math_path)


def parse_specs(text: str) -> List[MixerSpec]:
    """Comma-separated specs; a ``key=value`` piece without ``:`` continues the spec before it, so
    ``"attention:math,retnet:decomposed=True,chunk=64,bi_rwkv"`` holds three specs."""
    groups: List[str] = []
    for piece in filter(None, (p.strip() for p in text.split(","))):
        if groups and "=" in piece and ":" not in piece:
            groups[-1] += "," + piece
        else:
            groups.append(piece)
    return [parse_spec(g) for g in groups]


def check_spec(spec: MixerSpec) -> None:
    """ValueError (with the registry's message) unless the mixer is registered and takes every option."""
    try:
        check_options(MIXERS, resolve_type(MIXERS, spec.name), dict(spec.options))
    except (KeyError, TypeError) as err:
        raise ValueError(str(err)) from err


def select_specs(text: str, all_specs: Sequence[MixerSpec]) -> List[MixerSpec]:
    """The ``--mixers`` list: ``all`` (alone or among specs) stands for ``all_specs``; every spec is
    checked against the registry (ValueError), repeats are dropped."""
    chosen: Dict[str, MixerSpec] = {}
    for spec in parse_specs(text):
        for one in (all_specs if spec.label == "all" else [spec]):
            check_spec(one)
            chosen.setdefault(one.label, one)
    return list(chosen.values())


# ------------------------------------------------------------------------------------- scaling fits
def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> Optional[float]:
    """Least-squares slope of log(value) against log(size); None with fewer than two points."""
    points = [(math.log(n), math.log(v)) for n, v in zip(sizes, values) if v is not None and v > 0]
    if len(points) < 2:
        return None
    mx, my = (sum(c) / len(points) for c in zip(*points))
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx > 0 else None


def memory_excess(sizes: Sequence[float], peaks: Sequence[float], size: float, max_gb: float,
                  default_exponent: float = 2.0) -> Optional[str]:
    """Why a case of ``size`` would not fit in ``max_gb``, by extrapolating the measured peaks; None if it fits."""
    predicted = extrapolate(sizes, peaks, size, default_exponent)
    if predicted is not None and predicted > max_gb * 2**30:
        return f"skipped, peak memory predicted {predicted / 2**30:.1f} GiB > --max-gb {max_gb:g}"
    return None


def extrapolate(sizes: Sequence[float], values: Sequence[float], size: float, default_exponent: float = 2.0,
                min_exponent: float = 1.0) -> Optional[float]:
    """Predicted value at ``size`` from the last two measured points (power law, exponent at least
    ``min_exponent``), or from the last one with ``default_exponent``; None without points."""
    if not sizes:
        return None
    local = fit_exponent(sizes[-2:], values[-2:]) if len(sizes) > 1 else None
    exponent = max(min_exponent, local if local is not None else default_exponent)
    return values[-1] * (size / sizes[-1]) ** exponent


# ------------------------------------------------------------------------------------- command line
def add_common_args(parser: argparse.ArgumentParser, out: str, reps: int) -> None:
    """Options visionmix benchmark and visionmix compare share."""
    parser.add_argument("--mixers", default="all",
                        help="'all' or comma-separated specs name[:key=value,...][:math], e.g. retnet:decomposed=True")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=reps, help="timed repetitions (median), taken in turns")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--out", default=out, help="folder for the markdown / CSV outputs")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="ask glibc to keep freed memory (no fresh mmap per large block), as a caching allocator")
    parser.add_argument("--max-gb", type=float, default=None,
                        help="skip a case whose peak memory, extrapolated from the smaller sizes, exceeds this "
                             "(default 8 on CPU, 90%% of the GPU)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")


def int_list(text: str) -> List[int]:
    """``"16,32"`` -> [16, 32] (argparse type)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 16,32, got {text!r}") from None


def check_counts(counts: Dict[str, Optional[int]], minimum: int = 1) -> None:
    """:class:`UsageError` for a count below ``minimum`` (None: not given). A zero or negative count would
    otherwise surface late, as a traceback from an empty median or an empty tensor."""
    kind = "positive" if minimum == 1 else "non-negative"
    for flag, value in counts.items():
        if value is not None and value < minimum:
            raise UsageError(f"{flag} must be a {kind} integer, got {value}")


def check_sizes(flag: str, sizes: Sequence[int]) -> List[int]:
    """The sizes of a list option, repeats dropped (they would only repeat a column); :class:`UsageError`
    for an empty list or a size <= 0."""
    if not sizes:
        raise UsageError(f"{flag} needs at least one size, e.g. 16,32")
    bad = next((s for s in sizes if s <= 0), None)
    if bad is not None:
        raise UsageError(f"{flag} must be positive integers, got {bad}")
    return list(dict.fromkeys(sizes))


def check_limit(flag: str, value: Optional[float]) -> None:
    """:class:`UsageError` unless a limit is > 0 (inf means none; NaN compares false and is refused too)."""
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be a positive number, got {value}")


def check_common_args(args: argparse.Namespace) -> None:
    """The checks of :func:`add_common_args`' numeric options."""
    check_counts({"--batch": args.batch, "--reps": args.reps})
    check_limit("--max-gb", args.max_gb)


def prepare_run(args: argparse.Namespace) -> Tuple[torch.device, Path, str]:
    """Device, output folder (created) and the allocator policy of a run with the common options."""
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise UsageError(f"--device {args.device}: {str(err).strip().splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available on this machine")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.max_gb is None:
        on_gpu = device.type == "cuda"
        args.max_gb = 0.9 * torch.cuda.get_device_properties(device).total_memory / 2**30 if on_gpu else 8.0
    policy = keep_freed_memory() if args.keep_freed_memory else "system malloc (default policy)"
    return device, out, policy


def free_memory(device: Device) -> None:
    """Collect garbage (and empty the CUDA cache) between measurements."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ reports
Cell = Union[str, int, float, None]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """GitHub markdown; None cells print as an em dash, the first column is left-aligned."""
    lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join("—" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Union[str, Path], headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """CSV with empty cells for None."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows([["" if c is None else c for c in row] for row in rows])


def fmt(value: Optional[float], digits: int = 2) -> Optional[str]:
    """Fixed-point text, None kept (shown as a dash)."""
    return None if value is None else f"{value:.{digits}f}"


def mib(nbytes: Optional[int]) -> Optional[float]:  # bytes -> MiB, None kept
    return None if nbytes is None else nbytes / 2**20


def environment(device: Device) -> str:
    """One line naming the device and the thread count of this run."""
    device = torch.device(device)
    cpu = f"CPU ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"
    return f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu}, torch {torch.__version__}"
