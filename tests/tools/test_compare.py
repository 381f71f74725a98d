"""tools/compare.py in-process: the swap by assignment, --list, and a tiny side-by-side run."""
from __future__ import annotations

import csv

import pytest

from tests.tools.helpers import ROOT, load_tool
from visionmix.benchmarking import MixerSpec
from visionmix.config import load_config
from visionmix.registry import MIXERS, build_model, list_mixers, resolve_type

compare = load_tool("compare")
DIGITS = ROOT / "configs/quickstart/drwkv_digits8.py"


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
    grid = [n for n in list_mixers() if not getattr(resolve_type(MIXERS, n), "accepts_extra_tokens", False)]
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
                     f"  rala_row: {{config: configs/mixers/rala_digits8.py, weights: x.safetensors, quality: {quality}}}\n"
                     # same mixer, other options: a different model, so it must not match the plain rala sibling
                     "  rala_other: {config: configs/mixers/rala_digits8.py, cfg_options: {model.backbone.mixer.lepe_kernel_size: 3},"
                     f" weights: y.safetensors, quality: {quality}}}\n"
                     "  untrained: {config: configs/mixers/attention_digits8.py, weights: z.safetensors, status: untrained}\n")
    sibs = compare.siblings(load_config(DIGITS), [MixerSpec("rala"), MixerSpec("attention"),
                                                  MixerSpec("rala", (("lepe_kernel_size", 3),))])
    compare.attach_zoo_rows(sibs, str(table))
    assert [s.zoo[0] if s.zoo else None for s in sibs] == [None, "rala_row", None, "rala_other"]
    assert compare.quality_cells(sibs[1], 8) == ["rala_row", 0.5, 0.75, 1.25]
    assert compare.quality_cells(sibs[1], 16) == [None] * 4  # another resolution is another model
