"""tools/compare.py in-process: the swap by assignment, --list, and a tiny side-by-side run."""
from __future__ import annotations

import csv
import re

import pytest

from tests.tools.helpers import ROOT, load_tool
from visionmix.benchmarking import MixerSpec
from visionmix.cli import run_tool
from visionmix.config import load_config
from visionmix.registry import MIXERS, build_model, list_mixers, resolve_type

compare = load_tool("compare")
DIGITS = ROOT / "configs/quickstart/drwkv_digits8.py"
QUICK = "configs/quickstart/drwkv_digits8.py"  # as a zoo row names it


def test_list_prints_the_registered_mixers(capsys):
    assert compare.main(["--list"]) == 0
    out = capsys.readouterr().out
    mixers_line = next(line for line in out.splitlines() if line.startswith("mixers:"))
    assert all(name in mixers_line for name in list_mixers())
    assert "backbones:" in out and "isotropic" in out


def test_swap_by_assignment_changes_the_mixer():
    cfg = load_config(DIGITS)
    cfg.model.backbone.update(hidden_size=32, num_heads=2)
    assert compare.trim_depth(cfg.model.backbone, 1) == "depth 7 -> 1"
    sibs = compare.siblings(cfg, [MixerSpec("attention"), MixerSpec("bi_rwkv")])
    assert [s.label for s in sibs] == ["bi_rwkv (config)", "attention"]  # bi_rwkv is the config itself
    models = [build_model(s.backbone) for s in sibs]
    assert [type(m.mid_block.mixer) for m in models] == [resolve_type(MIXERS, "bi_rwkv"),
                                                             resolve_type(MIXERS, "attention")]
    params = [sum(p.numel() for p in m.parameters()) for m in models]
    assert params[0] != params[1]
    assert sibs[1].reference and not sibs[0].reference


def test_depths_and_resolution_rules():
    cfg = load_config(ROOT / "configs/drwkv/drwkv_b2_in256.py")
    assert compare.latent_factor(cfg) == 8 and compare.latent_factor(load_config(DIGITS)) == 1
    cfg.model.backbone.depths = [5, 4, 2]
    assert compare.trim_depth(cfg.model.backbone, 3) == "depths [5, 4, 2] -> [3, 3, 2]"


def test_tiny_run_writes_markdown_and_csv(tmp_path, capsys):
    argv = [str(DIGITS), "--res", "8", "--depth", "1", "--reps", "1", "--warmup", "0",
            "--mixers", "attention,bi_rwkv", "--out", str(tmp_path)]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert "| 8 | 8² | bi_rwkv (config) |" in out and "| 8 | 8² | attention |" in out
    with open(tmp_path / "drwkv_digits8.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["mixer"] for r in rows] == ["bi_rwkv (config)", "attention"]
    for row in rows:
        assert int(row["params"]) > 0 and float(row["gmacs"]) > 0
        assert float(row["images_per_s"]) > 0 and float(row["peak_mib"]) > 0
    assert float(rows[1]["ratio_attention"]) == pytest.approx(1.0)
    assert (tmp_path / "drwkv_digits8.md").exists()


def test_a_mixer_the_conditioning_rejects_is_listed_with_the_reason(tmp_path, capsys):
    grid = [n for n in list_mixers() if not resolve_type(MIXERS, n).accepts_extra_tokens]
    argv = [str(ROOT / "configs/uvit/uvit_h2_in256.py"), "--res", "16", "--depth", "1", "--reps", "1",
            "--warmup", "0", "--no-macs", "--mixers", grid[0], "--out", str(tmp_path),
            "--cfg-options", "model.backbone.hidden_size=32", "model.backbone.num_heads=2"]
    assert compare.main(argv) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if f"| {grid[0]} |" in line)
    assert "ValueError" in row and "in-context" in row


def test_quality_comes_from_the_zoo_row_with_exactly_that_backbone(tmp_path):
    table = tmp_path / "zoo.yml"
    quality = "{agreement: 0.5, agreement_cfg3: 0.75, frechet: 1.25, source: measured}"
    table.write_text("models:\n"
                     f"  rala_row: {{config: {QUICK}, cfg_options: {{model.backbone.mixer: rala}}, weights: x.safetensors, "
                     f"quality: {quality}}}\n"
                     # same mixer, other options: a different model, so it must not match the plain rala sibling
                     f"  rala_other: {{config: {QUICK}, cfg_options: {{model.backbone.mixer: 'rala:lepe_kernel_size=3'}},"
                     f" weights: y.safetensors, quality: {quality}}}\n"
                     f"  untrained: {{config: {QUICK}, cfg_options: {{model.backbone.mixer: attention}}, weights: z.safetensors,"
                     " status: untrained}\n")
    sibs = compare.siblings(load_config(DIGITS), [MixerSpec("rala"), MixerSpec("attention"),
                                                  MixerSpec("rala", (("lepe_kernel_size", 3),))])
    compare.attach_zoo_rows(sibs, load_config(DIGITS).model, str(table))
    assert [s.zoo[0] if s.zoo else None for s in sibs] == [None, "rala_row", None, "rala_other"]
    assert compare.quality_cells(sibs[1], 8) == ["rala_row", 0.5, 0.75, 1.25]
    assert compare.quality_cells(sibs[1], 16) == [None] * 4  # another resolution is another model

    # the same backbone in a model sampled or trained otherwise is not the zoo row's model either
    other = load_config(DIGITS, {"model.diffusion.noise_schedule": "linear"})
    sibs = compare.siblings(other, [MixerSpec("rala")])
    compare.attach_zoo_rows(sibs, other.model, str(table))
    assert [s.zoo for s in sibs] == [None, None]

    # trimming takes the row away (a trimmed model is not the trained one); a cap above the depth keeps it
    sibs = compare.siblings(load_config(DIGITS), [MixerSpec("rala")])
    compare.attach_zoo_rows(sibs, load_config(DIGITS).model, str(table))
    assert compare.trim_siblings(sibs, 7) == [] and sibs[1].zoo[0] == "rala_row"
    assert compare.trim_siblings(sibs, 2) == ["rala"] and sibs[1].zoo is None


def call(argv, capsys, monkeypatch):
    """``compare.main(argv)`` under the tools' error conventions: the exit code, stdout and the stderr lines."""
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)
    try:
        code = run_tool(compare.main, argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def test_a_trimmed_zoo_model_shows_no_quality_and_says_why(tmp_path, capsys, monkeypatch):
    argv = [str(DIGITS), "--res", "8", "--reps", "1", "--warmup", "0", "--no-macs", "--mixers", "attention",
            "--out", str(tmp_path)]
    code, out, err = call(argv + ["--depth", "1"], capsys, monkeypatch)
    assert code == 0 and err[0].startswith("| res | input | mixer |"), err  # progress tables only
    assert "| 8 | 8² | bi_rwkv (config) |" in out and "drwkv_digits`" not in out
    config_row = next(line for line in out.splitlines() if "| bi_rwkv (config) |" in line)
    assert config_row.endswith("| — | — | — | — |  |")  # zoo row, agreement, guidance 3, Fréchet, note
    assert ("quality columns: only for untrimmed models that are a zoo row (--depth 1 trims bi_rwkv (config), "
            "attention: cells left blank)") in out
    with open(tmp_path / "drwkv_digits8.csv") as f:
        assert all(r["zoo_row"] == r["agreement"] == "" for r in csv.DictReader(f))

    code, out, err = call(argv + ["--depth", "7"], capsys, monkeypatch)  # the full depth: the zoo rows themselves
    assert code == 0 and "| `drwkv_digits` | 90.8% |" in out and "quality columns" not in out


BAD = [  # id, extra arguments, first stderr line (regex); every one exits 2 before measuring
    ("reps_zero", ["--reps", "0"], r"error: --reps must be a positive integer, got 0$"),
    ("reps_negative", ["--reps", "-1"], r"error: --reps must be a positive integer, got -1$"),
    ("batch_zero", ["--batch", "0"], r"error: --batch must be a positive integer, got 0$"),
    ("batch_negative", ["--batch", "-4"], r"error: --batch must be a positive integer, got -4$"),
    ("warmup_negative", ["--warmup", "-1"], r"error: --warmup must be a non-negative integer, got -1$"),
    ("depth_zero", ["--depth", "0"], r"error: --depth must be a positive integer, got 0$"),
    ("downsample_zero", ["--downsample", "0"], r"error: --downsample must be a positive integer, got 0$"),
    ("res_zero", ["--res", "0"], r"error: --res must be positive integers, got 0$"),
    ("res_negative", ["--res", "8,-16"], r"error: --res must be positive integers, got -16$"),
    ("res_empty", ["--res", ","], r"error: --res needs at least one size"),
    ("res_not_int", ["--res", "8px"], r"error: argument --res: expected comma-separated integers .*'8px'$"),
    ("res_below_a_cell", ["--res", "4", "--downsample", "8"], r"error: --res 4 is not a multiple of 8, "),
    ("max_gb_zero", ["--max-gb", "0"], r"error: --max-gb must be a positive number, got 0\.0$"),
    ("max_gb_negative", ["--max-gb", "-1"], r"error: --max-gb must be a positive number, got -1\.0$"),
    ("device_unknown", ["--device", "abacus"], r"error: --device abacus: "),
    ("mixer_unknown", ["--mixers", "no_such_mixer"], r"error: --mixers: unknown token mixer 'no_such_mixer'"),
    ("cfg_options_without_value", ["--cfg-options", "model"], r"error: --cfg-options takes KEY=VALUE pairs"),
]


@pytest.mark.parametrize("extra,first", [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_options_are_refused_up_front(extra, first, tmp_path, capsys, monkeypatch):
    argv = [str(DIGITS), "--res", "8", "--reps", "1", "--mixers", "attention", "--out", str(tmp_path / "out")]
    code, _, err = call(argv + extra, capsys, monkeypatch)
    assert code == 2, err
    assert re.match(first, err[0]), err
    assert not (tmp_path / "out").exists()  # refused before the output folder is made
