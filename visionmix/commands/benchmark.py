"""Forward+backward time and peak memory of every registered token mixer at equal width, per token grid.

    visionmix benchmark                          # default variants, grids 16,32,64,128, fp32, CPU
    visionmix benchmark --device cuda
    visionmix benchmark --mixers attention,attention:math,retnet:decomposed=True --grids 16,32,64
    visionmix benchmark --dim 384 --heads 6 --batch 2 --reps 9 --out work_dirs/benchmark_d384

Each mixer is built alone (``dim``, ``heads``, layer 0 of 1, seed 0, eval mode, fp32) and called on one
(B, H*W, C) input (a (B, C, H, W) one for mixers with ``layout = "grid"``) with ``hw = (g, g)``; one
call is forward + backward against a fixed random output gradient, weight and input gradients freshly
allocated. ``--mixers all`` (default) takes DEFAULT_VARIANTS whose mixer is registered and accepts the
options, then every other registered mixer with its defaults; ``attention:math`` is softmax attention
through ``sdpa_kernel(SDPBackend.MATH)``, the reference the memory target is stated against. Specs:
``name[:key=value,...][:math]``, comma-separated (``key=value`` pieces continue the spec before them).

Per grid every mixer is called once (warm-up; a call over ``--max-seconds`` drops it from this and the
larger grids), once for peak memory (see visionmix.benchmarking: CUDA allocator peak, or the peak of
live operator-output bytes on CPU), then ``--reps`` times in turns with the others (round-robin, so
load elsewhere on the host hits all alike); the median is reported. A grid whose time or memory,
extrapolated from the mixer's last two grids, would exceed ``--max-seconds`` / ``--max-gb`` is skipped
(a dash, and a note with the prediction). Columns: the least-squares exponent p of time ~ N^p over the
measured grids (N = tokens) and the growth ratio t(64²)/t(32²) (the two largest grids if 32 or 64 is
not among them); a run of one grid has neither. Outputs in ``--out``: benchmark.md (also printed),
benchmark.csv, benchmark.png (log-log time and memory vs tokens, each mixer labelled with its exponent p).
Exit codes: 0 done, 1 runtime error, 2 bad arguments.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from visionmix.benchmarking import (MixerSpec, add_common_args, check_common_args, check_counts, check_limit,
                                    check_sizes, check_spec, environment, extrapolate, fit_exponent, fmt,
                                    free_memory, int_list, markdown_table, memory_excess, memory_method, mib,
                                    parse_spec, peak_memory, prepare_run, select_specs, time_call, times_in_turns,
                                    train_step, write_csv)
from visionmix.cli import ArgumentParser, UsageError, run_tool
from visionmix.registry import MIXERS, build, list_mixers

DEFAULT_VARIANTS = ("attention", "attention:math", "retnet", "retnet:decomposed=True",
                    "linear_attention:feature_map=elu1", "linear_attention:feature_map=focused")
REFERENCE = "attention:math"
# tab20's dark shades first, then its light ones; with 8 markers, 40 series get distinct (colour, marker) pairs
COLOURS = [(i % 10) * 2 + i // 10 for i in range(20)]
MARKERS = "os^Dv<>P"


@dataclass
class Series:
    """One mixer variant's measurements: grid -> seconds / bytes, None where skipped."""

    spec: MixerSpec
    times: Dict[int, Optional[float]] = field(default_factory=dict)
    peaks: Dict[int, Optional[int]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    stopped: bool = False

    def measured(self) -> Tuple[List[int], List[float], List[int]]:
        grids = [g for g, t in self.times.items() if t is not None]
        return [g * g for g in grids], [self.times[g] for g in grids], [self.peaks[g] for g in grids]

    def skip(self, grid: int, reason: str, stop: bool = True) -> None:
        self.times[grid] = self.peaks[grid] = None
        self.notes.append(f"{self.spec.label} @{grid}²: {reason}")
        self.stopped = self.stopped or stop


def default_specs() -> Tuple[List[MixerSpec], List[str]]:
    """DEFAULT_VARIANTS that fit the registry, then every other registered mixer with its defaults."""
    registered, specs, notes = list_mixers(), [], []
    for text in DEFAULT_VARIANTS:
        spec = parse_spec(text)
        if spec.name not in registered:
            continue
        try:
            check_spec(spec)
        except ValueError as err:
            notes.append(f"default variant {text} left out: {err}")
            continue
        specs.append(spec)
    covered = {s.name for s in specs}
    return specs + [MixerSpec(name) for name in registered if name not in covered], notes


def make_case(spec: MixerSpec, grid: int, args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """fwd+bwd closure of a freshly built mixer on a random input of the mixer's layout."""
    torch.manual_seed(0)
    mixer = build(MIXERS, spec.config(), dim=args.dim, num_heads=args.heads, layer_id=0, num_layers=1)
    mixer = mixer.to(device).eval()
    grid_layout = mixer.layout == "grid"
    shape = (args.batch, args.dim, grid, grid) if grid_layout else (args.batch, grid * grid, args.dim)
    x = torch.randn(shape, device=device, requires_grad=True)
    return train_step(lambda: mixer(x, (grid, grid)), [x, *mixer.parameters()], spec.context)


def predicted_excess(series: Series, grid: int, args: argparse.Namespace) -> Optional[str]:
    """Why this grid would exceed the limits, by extrapolation from the measured grids; None if it fits."""
    sizes, times, peaks = series.measured()
    t = extrapolate(sizes, times, grid * grid)
    if t is not None and t > args.max_seconds:
        return f"skipped, one fwd+bwd predicted to take {t:.0f} s > --max-seconds {args.max_seconds:g}"
    return memory_excess(sizes, peaks, grid * grid, args.max_gb)


def prepare(series: Series, grid: int, args: argparse.Namespace, device: torch.device) -> Optional[Callable]:
    """Build, warm up (checking --max-seconds) and measure peak memory; the case, or None if skipped."""
    reason = predicted_excess(series, grid, args)
    if reason:
        series.skip(grid, reason)
        return None
    try:
        step = make_case(series.spec, grid, args, device)
        first = time_call(step, device)
        if first > args.max_seconds:
            series.skip(grid, f"one fwd+bwd took {first:.1f} s > --max-seconds {args.max_seconds:g}")
            return None
        series.peaks[grid] = peak_memory(step, device)
        return step
    except Exception as err:  # noqa: BLE001 - a mixer that fails at some size is reported, not fatal
        series.skip(grid, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
        return None


def run_grid(all_series: List[Series], grid: int, args: argparse.Namespace, device: torch.device) -> None:
    cases = {}
    for series in all_series:
        if series.stopped:
            series.times[grid] = series.peaks[grid] = None
            continue
        step = prepare(series, grid, args, device)
        if step is not None:
            cases[series.spec.label] = step
    times = times_in_turns(cases, args.reps, device, warmup=0)
    for series in all_series:
        if series.spec.label in times:
            series.times[grid] = times[series.spec.label]
    del cases
    free_memory(device)


def prime(specs: List[MixerSpec], args: argparse.Namespace, device: torch.device) -> None:
    """One small call of each mixer, so one-time work (a JIT-built op) is not charged to the first grid."""
    for spec in specs:
        try:
            make_case(spec, 2, args, device)()
        except Exception:  # noqa: BLE001 - failures are reported at the measured grids
            pass


def growth_grids(grids: List[int]) -> Tuple[int, int]:
    return (32, 64) if {32, 64} <= set(grids) else tuple(sorted(grids)[-2:])


def reference_grid(all_series: List[Series]) -> Optional[int]:
    """Largest grid at which attention:math was measured (for the memory-ratio column)."""
    ref = next((s for s in all_series if s.spec.label == REFERENCE), None)
    measured = [g for g, p in ref.peaks.items() if p] if ref else []
    return max(measured) if measured else None


def table(all_series: List[Series], grids: List[int]) -> Tuple[List[str], List[list], List[list]]:
    """Headers, display rows and raw (CSV) rows; the exponent and growth columns only with two grids or more."""
    fits = len(grids) > 1
    a, b = growth_grids(grids) if fits else (None, None)
    ref_grid = reference_grid(all_series)
    headers = (["mixer"] + [f"{g}² ms" for g in grids] + [f"{g}² MiB" for g in grids]
               + (["exponent", f"t({b}²)/t({a}²)"] if fits else []))
    if ref_grid:
        headers.append(f"MiB ÷ {REFERENCE} @{ref_grid}²")
        ref_peak = next(s for s in all_series if s.spec.label == REFERENCE).peaks[ref_grid]
    shown, raw = [], []
    for s in all_series:
        ms = [None if s.times.get(g) is None else s.times[g] * 1e3 for g in grids]
        mem = [mib(s.peaks.get(g)) for g in grids]
        sizes, times, _ = s.measured()
        growth = s.times[b] / s.times[a] if fits and s.times.get(a) and s.times.get(b) else None
        fitted = [fit_exponent(sizes, times), growth] if fits else []
        extra = [s.peaks[ref_grid] / ref_peak if s.peaks.get(ref_grid) else None] if ref_grid else []
        values = ms + mem + fitted + extra
        raw.append([s.spec.label] + values)
        shown.append([s.spec.label] + [fmt(v, 1) for v in ms] + [fmt(v, 2) for v in mem]
                     + [fmt(v, 2) for v in values[2 * len(grids):]])
    return headers, shown, raw


def legend_label(series: Series) -> str:
    """The mixer and its fitted exponent of time ~ N^p (n/a below two measured grids)."""
    sizes, times, _ = series.measured()
    p = fit_exponent(sizes, times)
    return f"{series.spec.label} (p={'n/a' if p is None else f'{p:.2f}'})"


def plot(all_series: List[Series], grids: List[int], path: Path):
    """Log-log time and peak memory against tokens, one line per mixer in its own colour and marker, the
    legend (beside the axes, where it hides no line) giving each mixer's exponent. Returns the closed figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = matplotlib.colormaps["tab20"].colors
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, s in enumerate(all_series):
        sizes, times, peaks = s.measured()
        if not sizes:
            continue
        style = dict(color=palette[COLOURS[i % len(COLOURS)]], marker=MARKERS[i % len(MARKERS)], markersize=4)
        ax_t.loglog(sizes, [t * 1e3 for t in times], label=legend_label(s), **style)
        ax_m.loglog(sizes, [max(p, 1) / 2**20 for p in peaks], **style)
    for ax, name in ((ax_t, "fwd+bwd time (ms)"), (ax_m, "peak memory (MiB)")):
        ax.set_xlabel("tokens N = H·W")
        ax.set_xticks([g * g for g in grids], [f"{g}²" for g in grids])
        ax.minorticks_off()
        ax.set_ylabel(name)
        ax.grid(True, which="both", alpha=0.3)
    if ax_t.get_lines():
        fig.legend(*ax_t.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
                   title="time ~ N^p", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return fig


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """The options, checked (:class:`UsageError` for a count or size <= 0) before anything is measured."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, out="work_dirs/benchmark", reps=5)
    parser.add_argument("--grids", type=int_list, default=[16, 32, 64, 128], help="token grid sides, e.g. 16,32")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip a grid once one fwd+bwd takes longer")
    args = parser.parse_args(argv)
    check_common_args(args)
    check_counts({"--dim": args.dim, "--heads": args.heads})
    check_limit("--max-seconds", args.max_seconds)
    args.grids = sorted(check_sizes("--grids", args.grids))
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    defaults, notes = default_specs()
    try:
        specs = select_specs(args.mixers, defaults)
    except ValueError as err:
        raise UsageError(f"--mixers: {err}") from None
    device, out, policy = prepare_run(args)  # after every check: a refused run creates no folder
    grids = args.grids
    prime(specs, args, device)
    all_series = [Series(spec) for spec in specs]
    for grid in grids:
        run_grid(all_series, grid, args, device)
    headers, shown, raw = table(all_series, grids)
    notes += [n for s in all_series for n in s.notes]
    if len(grids) == 1:
        notes.append("one grid: no exponent or growth columns (they need two grids or more)")
    text = "\n".join([
        f"Token mixers, fwd+bwd, fp32, dim {args.dim}, {args.heads} heads, batch {args.batch}, median of "
        f"{args.reps} (in turns); {environment(device)}; {policy}.",
        f"Peak memory: {memory_method(device)}.", "", markdown_table(headers, shown), "",
        *[f"- {n}" for n in notes]]).rstrip() + "\n"
    (out / "benchmark.md").write_text(text)
    write_csv(out / "benchmark.csv", [h.replace("²", "^2") for h in headers], raw)
    plot(all_series, grids, out / "benchmark.png")
    print(text)
    print(f"written: {out / 'benchmark.md'}, {out / 'benchmark.csv'}, {out / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
