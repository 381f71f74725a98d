"""tools/benchmark.py in-process on tiny settings, and the shared helpers it stands on."""
from __future__ import annotations

import csv
import math
import re

import pytest
import torch
from matplotlib.colors import to_hex

from tests.tools.helpers import load_tool
from visionmix.benchmarking import (LiveTensorBytes, MixerSpec, extrapolate, fit_exponent, parse_specs,
                                    select_specs)
from visionmix.cli import run_tool
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


def test_grid_layout_mixers_get_grid_inputs(monkeypatch):
    from visionmix.contract import GridPart

    grid = [n for n in list_mixers() if resolve_type(MIXERS, n).layout == "grid"]
    if not grid:
        pytest.skip("no grid-layout mixer registered")
    seen, check = [], GridPart.check_input
    monkeypatch.setattr(GridPart, "check_input", lambda self, x, g: seen.append(tuple(x.shape)) or check(self, x, g))
    args = benchmark.parse_args(TINY)
    step = benchmark.make_case(MixerSpec(grid[0]), 5, args, torch.device("cpu"))
    step()
    assert seen and all(len(shape) == 4 and shape[2:] == (5, 5) for shape in seen), seen  # (B, C, H, W)


def call(tool, argv, capsys, monkeypatch):
    """``tool.main(argv)`` under the tools' error conventions: the exit code and the stderr lines."""
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)
    try:
        code = run_tool(tool.main, argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err.splitlines()


BAD = [  # id, arguments replacing TINY's, first stderr line (regex); every one exits 2 before measuring
    ("reps_zero", ["--reps", "0"], r"error: --reps must be a positive integer, got 0$"),
    ("reps_negative", ["--reps", "-2"], r"error: --reps must be a positive integer, got -2$"),
    ("batch_zero", ["--batch", "0"], r"error: --batch must be a positive integer, got 0$"),
    ("batch_negative", ["--batch", "-1"], r"error: --batch must be a positive integer, got -1$"),
    ("dim_zero", ["--dim", "0"], r"error: --dim must be a positive integer, got 0$"),
    ("heads_zero", ["--heads", "0"], r"error: --heads must be a positive integer, got 0$"),
    ("grid_zero", ["--grids", "0,8"], r"error: --grids must be positive integers, got 0$"),
    ("grid_negative", ["--grids", "4,-8"], r"error: --grids must be positive integers, got -8$"),
    ("grids_empty", ["--grids", ","], r"error: --grids needs at least one size"),
    ("grids_not_int", ["--grids", "4,x"], r"error: argument --grids: expected comma-separated integers .*'4,x'$"),
    ("max_gb_zero", ["--max-gb", "0"], r"error: --max-gb must be a positive number, got 0\.0$"),
    ("max_gb_nan", ["--max-gb", "nan"], r"error: --max-gb must be a positive number, got nan$"),
    ("max_seconds_negative", ["--max-seconds", "-1"], r"error: --max-seconds must be a positive number, got -1\.0$"),
    ("device_unknown", ["--device", "abacus"], r"error: --device abacus: "),
    ("mixer_unknown", ["--mixers", "no_such_mixer"], r"error: --mixers: unknown token mixer 'no_such_mixer'"),
]


@pytest.mark.parametrize("extra,first", [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_options_are_refused_up_front(extra, first, tmp_path, capsys, monkeypatch):
    code, err = call(benchmark, TINY + extra + ["--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 2, err
    assert re.match(first, err[0]), err
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


def test_a_single_grid_gives_the_table_without_fits_and_the_plot(tmp_path, capsys, monkeypatch):
    argv = ["--grids", "4", "--dim", "16", "--heads", "2", "--reps", "1", "--mixers", "attention,bi_rwkv",
            "--out", str(tmp_path)]
    code, err = call(benchmark, argv, capsys, monkeypatch)
    assert code == 0 and err == []
    text = (tmp_path / "benchmark.md").read_text()
    assert "| mixer | 4² ms | 4² MiB |" in text and "exponent" not in text.split("\n\n")[1]
    assert "one grid: no exponent or growth columns" in text
    rows = read_csv(tmp_path / "benchmark.csv")
    assert list(rows[0]) == ["mixer", "4^2 ms", "4^2 MiB"] and float(rows[1]["4^2 ms"]) > 0
    assert (tmp_path / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_gives_every_series_its_own_style_and_exponent(tmp_path):
    grids = [8, 16, 32]
    all_series = []
    for i in range(15):
        series = benchmark.Series(MixerSpec(f"mixer{i}"))
        for g in grids:  # time ~ N^(1 + i/10)
            series.times[g], series.peaks[g] = 1e-3 * (g * g) ** (1 + i / 10), 1024 * g * g
        all_series.append(series)
    fig = benchmark.plot(all_series, grids, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    time_axis, memory_axis = fig.axes
    for ax in (time_axis, memory_axis):
        styles = [(to_hex(line.get_color()), line.get_marker()) for line in ax.get_lines()]
        assert len(styles) == 15 and len(set(styles)) == 15
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == 15 and all("p=" in label for label in labels)
    assert labels[0] == "mixer0 (p=1.00)" and labels[14] == "mixer14 (p=2.40)"
