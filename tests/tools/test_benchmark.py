"""tools/benchmark.py in-process on tiny settings, and the shared helpers it stands on."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from tests.tools.helpers import load_tool
from visionmix.benchmarking import (LiveTensorBytes, MixerSpec, extrapolate, fit_exponent, parse_specs,
                                    select_specs)
from visionmix.registry import MIXERS, list_mixers, resolve_type

benchmark = load_tool("benchmark")
TINY = ["--grids", "4,8", "--dim", "32", "--heads", "4", "--reps", "1", "--mixers", "attention,bi_rwkv"]


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_exponent_fit_recovers_a_power_law(p):
    sizes = [16**2, 32**2, 64**2, 128**2]
    assert fit_exponent(sizes, [3e-4 * n**p for n in sizes]) == pytest.approx(p, abs=1e-9)
    assert fit_exponent(sizes[:1], [1.0]) is None
    predicted = extrapolate(sizes[:2], [3e-4 * n**p for n in sizes[:2]], sizes[2])  # exponent at least 1
    assert predicted == pytest.approx(3e-4 * sizes[1] ** p * (sizes[2] / sizes[1]) ** max(p, 1.0))


def test_specs_parse_options_math_and_continuations():
    specs = parse_specs("attention:math, retnet:decomposed=True,heads_range=4.5,bi_rwkv")
    assert specs == [MixerSpec("attention", (), True),
                     MixerSpec("retnet", (("decomposed", True), ("heads_range", 4.5))), MixerSpec("bi_rwkv")]
    assert specs[1].config() == {"type": "retnet", "decomposed": True, "heads_range": 4.5}
    assert specs[1].label == "retnet:decomposed=True,heads_range=4.5" and specs[2].config() == "bi_rwkv"
    with pytest.raises(ValueError, match="no option"):
        select_specs("attention:no_such_option=1", [])
    with pytest.raises(ValueError, match="unknown token mixer"):
        select_specs("no_such_mixer", [])


def test_defaults_come_from_the_registry_with_the_math_reference():
    specs, _ = benchmark.default_specs()
    labels = [s.label for s in specs]
    assert "attention:math" in labels
    assert {s.name for s in specs} == set(list_mixers())


def test_live_tensor_bytes_counts_what_is_alive():
    with LiveTensorBytes() as mode:
        a = torch.ones(1024)  # 4 KiB
        b = a.view(32, 32) * 2  # a view adds nothing; the product 4 KiB
        del a, b
        c = torch.ones(256)
    assert mode.peak == 8192 and mode.current == 1024
    del c
    linear, x = torch.nn.Linear(512, 512), torch.randn(2, 512, requires_grad=True)  # 1 MiB of weights
    with LiveTensorBytes() as mode:
        linear(x).sum().backward()  # views of the weight (its .t()) and of x are not new memory
    assert 1 << 20 < mode.peak < (1 << 20) + 64 * 1024  # the weight gradient and a few rows


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_markdown_csv_and_png(tmp_path, capsys):
    assert benchmark.main(TINY + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("attention", "bi_rwkv"):
        assert any(line.startswith(f"| {name} |") for line in out.splitlines())
    assert (tmp_path / "benchmark.md").read_text().strip() in out
    rows = read_csv(tmp_path / "benchmark.csv")
    assert [r["mixer"] for r in rows] == ["attention", "bi_rwkv"]
    for row in rows:
        assert all(float(row[f"{g}^2 ms"]) > 0 and float(row[f"{g}^2 MiB"]) > 0 for g in (4, 8))
        assert math.isfinite(float(row["exponent"])) and float(row["t(8^2)/t(4^2)"]) > 0
    assert (tmp_path / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predicted_excess_is_skipped_with_a_dash_and_a_note(tmp_path, capsys):
    argv = TINY[:-1] + ["attention:math", "--max-gb", "1e-6", "--out", str(tmp_path)]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    assert "attention:math @8²: skipped, peak memory predicted" in out
    row = read_csv(tmp_path / "benchmark.csv")[0]
    assert float(row["4^2 ms"]) > 0 and row["8^2 ms"] == ""


def test_grid_layout_mixers_get_grid_inputs():
    grid = [n for n in list_mixers() if getattr(resolve_type(MIXERS, n), "layout", "tokens") == "grid"]
    if not grid:
        pytest.skip("no grid-layout mixer registered")
    args = benchmark.parse_args(TINY)
    step = benchmark.make_case(MixerSpec(grid[0]), 5, args, torch.device("cpu"))
    step()  # a (B, N, C) input would fail in a grid mixer's convolutions
