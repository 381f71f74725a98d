"""A config and its mixer-swapped siblings side by side: params, GMACs, fwd+bwd images/s, peak memory.

    visionmix compare configs/drwkv/drwkv_b2_in256.py --mixers all --res 256,1024,2048 --depth 4
    visionmix compare configs/dit/dit_s2_in256.py --mixers bi_rwkv,attention:math --res 256 --device cuda
    visionmix compare --list           # registered mixers (with layout), FFNs and backbones

Siblings: the config as it is, then for each ``--mixers`` spec (``all``: every registered mixer with its
defaults; or ``name[:key=value,...][:math]``, comma-separated) the same config with
``cfg.model.backbone.mixer = <name or dict>`` assigned (a bare name is the mixer with its defaults). A
swap that names the config's own mixer without options is the config row itself. A sibling that cannot
be built (e.g. a grid-only mixer in U-ViT's in-context conditioning, ValueError) or fails to run is
listed with the reason.

Resolution: ``--res`` is in image pixels. The backbone is built with ``input_size = res / f``: f = 8 for
latent configs (the model has a VAE or a ``latent_scale``: SD-VAE latents, so a 256 px config has
``input_size=32``), 1 for pixel-space ones; ``--downsample F`` overrides f. ``--depth N`` trims blocks
for a quick run: ``depth = min(depth, N)`` for isotropic backbones (with U-ViT long skips N gives
2*(N//2)+1 blocks), ``depths[i] = min(depths[i], N)`` for each level of backbones with a ``depths``
list (U-shaped). Only the denoiser backbone is built and timed (no VAE, no diffusion loss), in eval
mode (no drop path / label dropout randomness) with gradients on, fp32.

Measurement per resolution: every sibling is built once and called once for peak memory (see
visionmix.benchmarking), then ``--warmup`` untimed and ``--reps`` timed fwd+bwd calls in turns
(round-robin over siblings), median; images/s = batch / time. GMACs are per image (batch 1,
visionmix.flops.count_macs); ``--no-macs`` skips them. ``× attention``: images/s relative to the
sibling whose mixer is ``attention`` (plain, fused SDPA path); ``s/step``: one fwd+bwd at ``--batch``.

Quality: a sibling whose model is exactly the model of a model-zoo row with measured quality
(``visionmix/zoo/model_zoo.yml``; the digits rows: the quickstart config with one mixer swapped) gets that row's
digits agreement (unguided / guidance 3) and Fréchet distance at its trained resolution, e.g.
``visionmix compare configs/quickstart/drwkv_digits8.py --mixers all --res 8 --batch 64``. Those numbers
belong to the row's trained weights: a sibling that ``--depth`` trims (or ``--cfg-options`` changes) is another
model, and its quality cells stay blank.
Writes ``<out>/<config>.md`` (also printed) and ``<out>/<config>.csv``. Exit codes: 0 done, 1 runtime error,
2 bad arguments.
"""

import argparse
import contextlib
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from visionmix import build_model
from visionmix.benchmarking import (MixerSpec, add_common_args, check_common_args, check_counts, check_sizes,
                                    environment, fmt, free_memory, int_list, markdown_table, memory_excess,
                                    memory_method, mib, peak_memory, prepare_run, select_specs, times_in_turns,
                                    train_step, write_csv)
from visionmix.cli import ArgumentParser, CfgOptionsAction, UsageError, run_tool
from visionmix.config import load_config
from visionmix.flops import backbone_inputs, count_macs, count_params
from visionmix.registry import BACKBONES, MIXERS, as_config, list_ffns, list_mixers, resolve_type

HEADERS = ["res", "input", "mixer", "params", "GMACs", "img/s", "s/step", "× attention", "peak MiB", "note"]
QUALITY_HEADERS = ["zoo row", "agreement", "guidance 3", "Fréchet"]


@dataclass
class Sibling:
    label: str
    backbone: Optional[Config]  # backbone config, None when the swap failed
    spec: Optional[MixerSpec] = None  # None for the config's own mixer
    error: Optional[str] = None
    reference: bool = False  # the plain attention sibling the ratio column divides by
    zoo: Optional[Tuple[str, dict]] = None  # (name, row) of the model-zoo row with this exact backbone

    def context(self) -> ContextManager:
        return self.spec.context() if self.spec else contextlib.nullcontext()


def mixer_name(cls: type) -> str:
    return next((name for name, c in MIXERS.module_dict.items() if c is cls), cls.__name__)


def latent_factor(cfg: Config) -> int:
    """8 for SD-VAE latent configs (a VAE or a latent_scale in the model), else 1 (pixel space)."""
    model = cfg.model
    return 8 if model.get("vae") or "latent_scale" in (model.get("data_preprocessor") or {}) else 1


def trim_depth(backbone: Config, n: Optional[int]) -> str:
    """Cap the block count at ``n`` (see the module docstring); returns what was done."""
    if n is None:
        return "full depth"
    if "depths" in backbone:
        old, backbone.depths = list(backbone.depths), [min(d, n) for d in backbone.depths]
        return f"depths {old} -> {list(backbone.depths)}"
    if "depth" in backbone:
        old, backbone.depth = backbone.depth, min(backbone.depth, n)
        return f"depth {old} -> {backbone.depth}"
    return "no depth/depths key: blocks not trimmed"


def siblings(cfg: Config, specs: List[MixerSpec]) -> List[Sibling]:
    """The config itself, then one sibling per spec with ``backbone.mixer`` assigned."""
    attention = resolve_type(MIXERS, "attention")
    own = resolve_type(MIXERS, as_config(cfg.model.backbone.mixer)["type"])
    rows = [Sibling(f"{mixer_name(own)} (config)", copy.deepcopy(cfg.model.backbone), reference=own is attention)]
    for spec in specs:
        plain = not spec.options and not spec.math
        if plain and resolve_type(MIXERS, spec.name) is own:
            continue
        swapped = copy.deepcopy(cfg)
        swapped.model.backbone.mixer = spec.config()
        rows.append(Sibling(spec.label, swapped.model.backbone, spec, reference=plain and spec.name == "attention"))
    return rows


def config_key(value: object) -> object:
    """A comparable form of a config value; a ``type`` (class, registry name or dotted path, as a ``.py`` or a
    dumped ``.yaml`` config writes it) by its class name."""
    if isinstance(value, dict):
        return tuple(sorted((k, type_name(v) if k == "type" else config_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(config_key(v) for v in value)
    return repr(value)


def type_name(type_: object) -> str:
    return type_.__name__ if isinstance(type_, type) else str(type_).rsplit(".", 1)[-1]


def backbone_key(backbone: Config) -> object:
    """A comparable form of a backbone config, the mixer's type resolved (a name and its class are equal)."""
    plain = copy.deepcopy(backbone.to_dict() if isinstance(backbone, Config) else dict(backbone))
    mixer = dict(as_config(plain["mixer"]))
    mixer["type"] = resolve_type(MIXERS, mixer["type"])
    plain["mixer"] = mixer
    return config_key(plain)


def model_key(model: dict, backbone: Optional[Config] = None) -> object:
    """A comparable form of a model config with ``backbone`` in place of its own: diffusion, sampling and the
    rest of the model count too, since a row's quality is that of its whole trained model."""
    rest = {k: v for k, v in model.items() if k != "backbone"}
    return config_key(rest), backbone_key(model["backbone"] if backbone is None else backbone)


def attach_zoo_rows(sibs: List[Sibling], model: dict, table: Optional[str] = None) -> None:
    """Give each sibling (a backbone swapped into ``model``) the model-zoo row with measured quality whose config
    builds exactly that model."""
    from visionmix.hub import list_models, model_info, resolve_config

    wanted = {model_key(model, s.backbone): s for s in sibs if s.backbone is not None}
    for name in list_models(table):
        row = model_info(name, table)
        if not isinstance(row.get("quality"), dict) or row["quality"].get("agreement") is None:
            continue
        cfg = load_config(str(resolve_config(row["config"])), row.get("cfg_options") or None)
        sibling = wanted.get(model_key(cfg.model))
        if sibling is not None:
            sibling.zoo = (name, row)


def trim_siblings(sibs: List[Sibling], depth: Optional[int]) -> List[str]:
    """Trim every sibling's blocks; a sibling the trim changed loses its zoo row (a trimmed model is not the
    trained one). Returns the labels of those."""
    lost = []
    for s in sibs:
        if s.backbone is None:
            continue
        before = backbone_key(s.backbone)
        trim_depth(s.backbone, depth)
        if s.zoo is not None and backbone_key(s.backbone) != before:
            s.zoo = None
            lost.append(s.label)
    return lost


def quality_cells(sibling: Sibling, input_size: int) -> list:
    """[zoo row, agreement, guidance 3, Fréchet] at the row's trained input size, else blanks."""
    if sibling.zoo is None or sibling.backbone.get("input_size") != input_size:
        return [None] * len(QUALITY_HEADERS)
    name, row = sibling.zoo
    quality = row["quality"]
    return [name, quality.get("agreement"), quality.get("agreement_cfg3"), quality.get("frechet")]


def build_at(sibling: Sibling, input_size: int, device: torch.device) -> nn.Module:
    backbone = copy.deepcopy(sibling.backbone)
    backbone.input_size = input_size
    torch.manual_seed(0)
    return build_model(backbone).to(device).eval()


def short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:240] if text else ''}"


def prepare(sibling: Sibling, input_size: int, args: argparse.Namespace, device: torch.device
            ) -> Tuple[dict, Optional[Callable[[], None]]]:
    """Row values (params, GMACs, peak) and the fwd+bwd closure, or the reason it is missing."""
    row: Dict[str, object] = {}
    try:
        model = build_at(sibling, input_size, device)
    except Exception as err:  # noqa: BLE001 - a sibling that cannot be built is listed with the reason
        return {"note": short(err)}, None
    row["params"] = count_params(model)[0]
    inputs = tuple(x.to(device) for x in backbone_inputs(model, args.batch))
    if not args.no_macs:
        try:
            row["macs"] = count_macs(model, tuple(x[:1] for x in inputs))
        except Exception as err:  # noqa: BLE001
            row["note"] = f"GMACs: {short(err)}"
    step = train_step(lambda: model(*inputs), list(model.parameters()), sibling.context)
    try:
        row["peak"] = peak_memory(step, device)
    except Exception as err:  # noqa: BLE001 - e.g. out of memory at this resolution
        return {**row, "note": short(err)}, None
    return row, step


def measure_res(sibs: List[Sibling], res: int, args: argparse.Namespace, device: torch.device,
                peaks: Dict[str, List[Tuple[int, int]]]) -> List[list]:
    """Display rows of every sibling at one resolution, timed in turns. ``peaks`` (sibling -> [(cells, bytes)])
    holds the peaks measured at the smaller resolutions: a sibling predicted not to fit is skipped."""
    input_size = res // args.downsample
    values, cases = {}, {}
    for s in sibs:
        history = peaks.setdefault(s.label, [])
        # from a single smaller size, assume peak ~ cells^1.5: resolutions here jump by 4-16x in cells
        excess = memory_excess([c for c, _ in history], [b for _, b in history], input_size**2, args.max_gb, 1.5)
        if s.backbone is None or excess:
            values[s.label] = {"note": s.error or excess}
            continue
        values[s.label], step = prepare(s, input_size, args, device)
        if step is not None:
            cases[s.label] = step
            history.append((input_size**2, values[s.label]["peak"]))
    times = times_in_turns(cases, args.reps, device, warmup=args.warmup)
    del cases
    free_memory(device)
    ref = next((s.label for s in sibs if s.reference and s.label in times), None)
    rows = []
    for s in sibs:
        v, t = values[s.label], times.get(s.label)
        ips = args.batch / t if t else None
        ratio = ips / (args.batch / times[ref]) if ips and ref else None
        macs = v.get("macs")
        rows.append([res, f"{input_size}²", s.label, v.get("params"), None if macs is None else macs / 1e9,
                     ips, t, ratio, mib(v.get("peak")), v.get("note"), *quality_cells(s, input_size)])
    return rows


def percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def shown(row: list, quality: bool) -> list:
    res, size, label, params, gmacs, ips, step, ratio, peak, note, zoo, agree, agree3, frechet = row
    cells = [res, size, label, None if params is None else f"{params:,}", fmt(gmacs, 3), fmt(ips, 2),
             fmt(step, 3), fmt(ratio, 2), fmt(peak, 1), note or ""]
    if quality:
        cells[-1:-1] = [f"`{zoo}`" if zoo else "—", percent(agree), percent(agree3), fmt(frechet, 2)]
    return cells


def headers(quality: bool) -> List[str]:
    return HEADERS[:-1] + QUALITY_HEADERS + HEADERS[-1:] if quality else HEADERS


def list_registered() -> str:
    mixers = [f"{n} ({resolve_type(MIXERS, n).layout})" for n in list_mixers()]
    BACKBONES.import_from_location()
    return (f"mixers: {', '.join(mixers)}\nffns: {', '.join(list_ffns())}\n"
            f"backbones: {', '.join(sorted(BACKBONES.module_dict))}")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """The options, checked (:class:`UsageError` for a count or size <= 0) before a config is read."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="config file (.py or .yaml)")
    add_common_args(parser, out="work_dirs/compare", reps=3)
    parser.add_argument("--res", type=int_list, default=[256, 1024], help="image sizes in pixels, e.g. 256,1024")
    parser.add_argument("--depth", type=int, default=None, help="cap the blocks (per level) at N for a quick run")
    parser.add_argument("--downsample", type=int, default=None, help="pixels per backbone input cell (default 8/1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed fwd+bwd calls per sibling before timing")
    parser.add_argument("--no-macs", action="store_true", help="skip the GMACs column")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE",
                        help="overrides applied before swapping")
    parser.add_argument("--list", action="store_true", help="print the registered mixers, FFNs and backbones")
    args = parser.parse_args(argv)
    if not args.list and not args.config:
        parser.error("a CONFIG is needed (or --list)")
    check_common_args(args)
    check_counts({"--depth": args.depth, "--downsample": args.downsample})
    check_counts({"--warmup": args.warmup}, minimum=0)
    args.res = check_sizes("--res", args.res)
    return args


def check_resolutions(res: List[int], downsample: int) -> None:
    """Every ``--res`` a whole number of backbone input cells (``res // downsample`` would silently round)."""
    bad = next((r for r in res if r % downsample), None)
    if bad is not None:
        raise UsageError(f"--res {bad} is not a multiple of {downsample}, the pixels per backbone input cell of "
                         "this config (--downsample sets it)")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.list:
        print(list_registered())
        return 0
    cfg = load_config(args.config, args.cfg_options)
    args.downsample = args.downsample or latent_factor(cfg)
    check_resolutions(args.res, args.downsample)
    trimmed = trim_depth(copy.deepcopy(cfg.model.backbone), args.depth)
    try:
        specs = select_specs(args.mixers, [MixerSpec(name) for name in list_mixers()])
    except ValueError as err:
        raise UsageError(f"--mixers: {err}") from None
    device, out, policy = prepare_run(args)  # after every check: a refused run creates no folder
    sibs = siblings(cfg, specs)
    attach_zoo_rows(sibs, cfg.model)  # before trimming: the zoo rows are full-depth models
    lost = trim_siblings(sibs, args.depth)
    quality = any(s.zoo for s in sibs) or bool(lost)
    notes = [f"quality columns: only for untrimmed models that are a zoo row (--depth {args.depth} trims "
             f"{', '.join(lost)}: cells left blank)"] if lost else []
    peaks: Dict[str, List[Tuple[int, int]]] = {}
    rows = []
    for res in args.res:
        rows += measure_res(sibs, res, args, device, peaks)
        print(markdown_table(headers(quality), [shown(r, quality) for r in rows if r[0] == res]),
              file=sys.stderr, flush=True)  # progress
    stem = Path(args.config).stem
    text = "\n".join([
        f"{stem} and its mixer siblings: fwd+bwd of the backbone, fp32, batch {args.batch}, {trimmed}, input = "
        f"res / {args.downsample}; median of {args.reps} in turns after {args.warmup} warm-up; {environment(device)}; "
        f"{policy}.", f"Peak memory: {memory_method(device)}.", "",
        markdown_table(headers(quality), [shown(r, quality) for r in rows]),
        *([""] + notes if notes else [])]) + "\n"
    (out / f"{stem}.md").write_text(text)
    write_csv(out / f"{stem}.csv", ["res", "input", "mixer", "params", "gmacs", "images_per_s", "seconds_per_step",
                                    "ratio_attention", "peak_mib", "note", "zoo_row", "agreement", "agreement_cfg3",
                                    "frechet"], rows)
    print(text)
    print(f"written: {out / (stem + '.md')}, {out / (stem + '.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
