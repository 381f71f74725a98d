"""The model zoo: render ``model_zoo.md`` from ``visionmix/zoo/model_zoo.yml`` and reproduce its digits rows.

    visionmix zoo list                        # the zoo's names
    visionmix zoo render                      # write model_zoo.md from the yml
    visionmix zoo render --check              # exit 1 when model_zoo.md is stale
    visionmix zoo reproduce drwkv_digits      # train, export, score, grid, record, re-render
    visionmix zoo reproduce all --skip-train  # every digits row, from the work dirs' last checkpoints

``reproduce`` covers the rows trained here (``converter: null``): train into work_dirs/zoo/NAME (``--skip-train``: use
its last checkpoint as it is), export the EMA weights as fp16 safetensors to visionmix/zoo/digits/NAME.safetensors,
score that file loaded into the fp32 model as ``visionmix eval-digits`` does (unguided and guidance 3, seed 0), draw a
10-per-digit grid, record it all in the row (other rows stay byte-identical) and re-render. Writes are atomic.
"""
from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from visionmix.cli import ArgumentParser, UsageError, run_tool  # light: no torch
from visionmix.hub import sha256_of  # light: yaml only

from .zoo_markdown import UNTRAINED, is_digits, render  # noqa: F401 (UNTRAINED: part of this command's API)

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent  # a checkout: render and reproduce write model_zoo.md and the digits rows there
ZOO_DIR = PACKAGE / "zoo"
YML = ZOO_DIR / "model_zoo.yml"
MARKDOWN = ROOT / "model_zoo.md"
WORK_ROOT = Path("work_dirs") / "zoo"
CONVERTERS = ("dit", "sit", "dico", "uvit", "drwkv", None)
REQUIRED = ("family", "mixer", "scaffold", "resolution", "config", "params", "gmacs", "weights", "sha256",
            "converter", "quality")
ROW_ORDER = ("family", "mixer", "scaffold", "resolution", "config", "cfg_options", "params", "gmacs", "weights",
             "filename", "sha256", "converter", "status", "quality", "grid", "train")
MAX_BYTES = 4_000_000  # a digits row's weights stay small enough to live in the repository
GRID_PER_CLASS = 10
SEED = 0
ROW_HEADER = re.compile(r"^  ([^\s#][^:#]*):\s*$")  # "  name:" opens a row of the ``models:`` mapping


def load_rows(path: Optional[Path] = None) -> dict[str, dict]:
    """The yml's (default: the zoo's) ``models`` mapping, name -> row."""

    from visionmix import safe_yaml

    return safe_yaml.load_file(path or YML)["models"]


def row_spans(text: str) -> dict[str, tuple[int, int]]:
    """name -> (first line, end line) of each row's text: its header and the lines indented deeper than it.
    Comments and blank lines between rows belong to no row, so rewriting a row never touches them."""
    lines, spans, start, name = text.splitlines(keepends=True), {}, None, None
    for i, line in enumerate(lines + ["\n"]):
        if start is not None and not line.startswith("    "):
            spans[name], start = (start, i), None
        match = ROW_HEADER.match(line)
        if match:
            name, start = match.group(1), i
    return spans


def dump_row(name: str, row: dict) -> str:
    """A row as yml text: ``  name:`` then one ``    key: value`` line per field in schema order, each value in
    flow style on its line (so a row's span is exactly its indented lines)."""
    import yaml

    keys = [k for k in ROW_ORDER if k in row] + [k for k in row if k not in ROW_ORDER]
    # a one-item flow list renders any value, scalars included, without YAML's document-end marker
    flow = {k: yaml.safe_dump([row[k]], default_flow_style=True, sort_keys=False, width=1 << 16).strip()[1:-1]
            for k in keys}
    return f"  {name}:\n" + "".join(f"    {k}: {flow[k]}\n" for k in keys)


def replace_row(text: str, name: str, row: dict) -> str:
    """``text`` with row ``name`` replaced by ``row`` (appended when absent); every other byte is kept."""
    lines = text.splitlines(keepends=True)
    span = row_spans(text).get(name)
    if span is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines) + dump_row(name, row)
    return "".join(lines[:span[0]]) + dump_row(name, row) + "".join(lines[span[1]:])


def write_atomic(path: Path, data: bytes | str) -> None:
    """``data`` at ``path``, whole or not at all."""
    from visionmix.atomic_write import write_bytes

    write_bytes(path, data.encode() if isinstance(data, str) else data)


def train_row(name: str, row: dict, work_dir: Path) -> None:
    """``visionmix train`` in a fresh process (one Runner per process), its output in work_dirs/zoo/NAME.train.log."""
    log = work_dir.with_name(f"{name}.train.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "visionmix", "train", row["config"], "--work-dir", str(work_dir), "--overwrite"]
    if row.get("cfg_options"):
        command += ["--cfg-options", *(f"{k}={v}" for k, v in row["cfg_options"].items())]
    print(f"{name}: training ({' '.join(command[1:])}), log in {log}", flush=True)
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        raise RuntimeError(f"{name}: training failed (exit {code}); see the end of {log}")


def last_checkpoint(work_dir: Path) -> Path:
    """The checkpoint mmengine's ``last_checkpoint`` pointer names, else the highest ``iter_*.pth``."""
    pointer = work_dir / "last_checkpoint"
    if pointer.is_file():
        named = Path(pointer.read_text().strip())
        if named.is_file():
            return named
    found = sorted(work_dir.glob("iter_*.pth"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not found:
        raise FileNotFoundError(f"no checkpoint in {work_dir.resolve()}: train it first (reproduce without "
                                "--skip-train)")
    return found[-1]


def training_minutes(meta: dict) -> Optional[float]:
    """Wall minutes from the run's start (the timestamp mmengine appends to the experiment name) to the
    checkpoint's save time; None when the checkpoint does not say."""
    start = re.search(r"(\d{8}_\d{6})(?:_\d+)?$", str(meta.get("experiment_name", "")))
    if not start or not meta.get("time"):
        return None
    begin, end = (time.mktime(time.strptime(s, "%Y%m%d_%H%M%S")) for s in (start.group(1), meta["time"]))
    return round((end - begin) / 60, 1)


def read_checkpoint(path: Path) -> dict:
    from visionmix.checkpoint_io import read_checkpoint

    return read_checkpoint(str(path), map_location="cpu")  # as data, like every checkpoint


def export_weights(checkpoint: Path | dict, out: Path, metadata: dict[str, str], max_bytes: int = MAX_BYTES) -> dict:
    """A training checkpoint's (path, or the loaded dict) EMA weights as fp16 safetensors at ``out`` (integer
    buffers keep their dtype), with ``metadata``; refuses a file over ``max_bytes``. Returns its ``meta``."""
    from safetensors.torch import save_file

    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    if "ema_state_dict" not in ckpt:
        where = "the checkpoint" if ckpt is checkpoint else checkpoint
        raise ValueError(f"{where} holds no EMA weights (no ema_state_dict): train with the config's custom_hooks.ema")
    # mmengine's EMAHook swaps before saving: state_dict holds the EMA weights, ema_state_dict the raw ones
    tensors = {k.removeprefix("module."): (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in ckpt["state_dict"].items()}
    from visionmix.atomic_write import atomic_path

    with atomic_path(out) as temp:
        save_file(tensors, str(temp), metadata=metadata)
        if temp.stat().st_size > max_bytes:
            raise ValueError(f"{out.name} would be {temp.stat().st_size:,} bytes, over the zoo's {max_bytes:,}: "
                             "digits rows must stay small (shrink the model or raise MAX_BYTES deliberately)")
    return ckpt.get("meta") or {}


def load_exported(model: Any, path: Path) -> Any:
    """Load an exported fp16 file into ``model`` as fp32, strictly (every tensor must fit)."""
    from visionmix.checkpoint_io import fit_state_dict
    from visionmix.hub import read_weights

    state = {k: v.float() if v.is_floating_point() else v for k, v in read_weights(path).items()}
    fit_state_dict(model, state, str(path), "the row's config", strict=True)
    return model


def evaluate(model: Any, per_class: int, seed: int = SEED) -> tuple[dict, Any, Any]:
    """visionmix eval-digits's protocol (labels 0..9 x per_class, one generator seeded per guidance scale, the
    config's sampler and steps) at guidance 1 and 3. Returns the quality entry and the unguided grid's
    images and labels (the first GRID_PER_CLASS of each digit)."""
    import torch

    from visionmix.evaluation import DigitsScorer

    model.eval()
    scorer = DigitsScorer.fit()
    labels = torch.arange(10).repeat_interleave(per_class)
    sampler, steps = model.sampling["sampler"], model.sampling["steps"]
    scores, grid = {}, None
    for scale in (1.0, 3.0):
        images = model.sample(labels, generator=torch.Generator().manual_seed(seed), cfg_scale=scale,
                              sampler=sampler, steps=steps)
        scores[scale] = scorer.score(images, labels)
        if grid is None:
            grid = images.view(10, per_class, *images.shape[1:])[:, :GRID_PER_CLASS].reshape(-1, *images.shape[1:])
    quality = dict(agreement=round(float(scores[1.0]["agreement"]), 4),
                   agreement_cfg3=round(float(scores[3.0]["agreement"]), 4),
                   frechet=round(float(scores[1.0]["frechet"]), 3),
                   frechet_cfg3=round(float(scores[3.0]["frechet"]), 3),
                   samples=len(labels), sampler=f"{sampler}-{steps}", seed=seed, source="measured")
    return quality, grid, torch.arange(10).repeat_interleave(min(per_class, GRID_PER_CLASS))


def reproduce_row(name: str, row: dict, per_class: int, skip_train: bool) -> dict:
    """Train (unless skipped), export, score, draw; the filled row (the yml is not touched here)."""
    import visionmix
    from visionmix.config import load_config
    from visionmix.visualization import save_grid

    from .flops import measure

    work_dir = ROOT / WORK_ROOT / name
    if not skip_train:
        train_row(name, row, work_dir)
    checkpoint = last_checkpoint(work_dir)
    cfg = load_config(str(ROOT / row["config"]), row.get("cfg_options"))
    ckpt = read_checkpoint(checkpoint)
    meta = ckpt.get("meta") or {}
    iters, planned = int(meta.get("iter", -1)), int(cfg.train_cfg.max_iters)
    if iters != planned:
        raise RuntimeError(f"{checkpoint} is iteration {iters} of {planned}: the run is unfinished (still "
                           "training, or stopped); wait for it, or reproduce without --skip-train")
    weights = ZOO_DIR / "digits" / f"{name}.safetensors"
    metadata = dict(config=row["config"], mixer=row["mixer"], iterations=str(iters),
                    visionmix_version=visionmix.__version__)
    export_weights(ckpt, weights, metadata)
    model = load_exported(visionmix.build_model(cfg.model), weights)
    print(f"{name}: exported {weights.relative_to(ROOT)} ({weights.stat().st_size:,} bytes); scoring "
          f"{per_class} samples per digit", flush=True)
    quality, images, labels = evaluate(model, per_class)
    grid = ZOO_DIR / "digits" / f"{name}.png"
    save_grid(images, str(grid), labels=labels)
    params, _, gmacs, _ = measure(str(ROOT / row["config"]), row.get("cfg_options"))
    filled = {k: v for k, v in row.items() if k != "status"}
    filled.update(params=params, gmacs=round(gmacs, 6), weights=f"digits/{weights.name}", sha256=sha256_of(weights),
                  quality=quality, grid=f"digits/{grid.name}",
                  train=dict(iters=iters, minutes=training_minutes(meta)))
    return filled


def record_row(name: str, row: dict) -> None:
    """Rewrite the yml with ``row`` (other rows byte-identical) and re-render the markdown."""
    write_atomic(YML, replace_row(YML.read_text(), name, row))
    write_atomic(MARKDOWN, render(load_rows()))


def resolve_names(names: Sequence[str], rows: dict[str, dict]) -> list[str]:
    digits = [k for k, v in rows.items() if is_digits(v)]
    if list(names) == ["all"]:
        return digits
    for name in names:
        if name not in rows:
            near = difflib.get_close_matches(name, list(rows), n=3)
            raise UsageError(f"{name} is not in the zoo" + (f" (did you mean {', '.join(near)}?)" if near else
                                                             "; visionmix zoo list shows the names"))
        if name not in digits:
            raise UsageError(f"{name} is a published checkpoint (converter {rows[name]['converter']}): reproduce "
                             f"covers the rows trained here: {', '.join(digits)}")
    return list(names)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the zoo's names")
    render_cmd = commands.add_parser("render", help="write model_zoo.md from the yml")
    render_cmd.add_argument("--check", action="store_true", help="write nothing; exit 1 when model_zoo.md is stale")
    rep = commands.add_parser("reproduce", help="train, export, score and record digits rows")
    rep.add_argument("names", nargs="+", metavar="NAME", help="digits rows, or 'all'")
    rep.add_argument("--skip-train", action="store_true", help="use work_dirs/zoo/NAME's last checkpoint as it is")
    rep.add_argument("--per-class", type=int, default=50, help="samples per digit for the scores (default 50)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    rows = load_rows()
    if args.command == "list":
        print("\n".join(rows))
        return 0
    if args.command == "render":
        text = render(rows)
        if args.check:
            if not MARKDOWN.is_file() or MARKDOWN.read_text() != text:
                print(f"error: {MARKDOWN.name} is stale: run visionmix zoo render", file=sys.stderr)
                return 1
            print(f"{MARKDOWN.name} is up to date")
            return 0
        write_atomic(MARKDOWN, text)
        print(f"wrote {MARKDOWN.relative_to(ROOT)} ({len(rows)} rows)")
        return 0
    if args.per_class < 1:
        raise UsageError(f"--per-class must be a positive integer, got {args.per_class}")
    for name in resolve_names(args.names, rows):
        filled = reproduce_row(name, rows[name], args.per_class, args.skip_train)
        record_row(name, filled)
        q = filled["quality"]
        print(f"{name}: agreement {q['agreement']:.1%} unguided, {q['agreement_cfg3']:.1%} at guidance 3; "
              f"recorded in {YML.relative_to(ROOT)} and {MARKDOWN.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
