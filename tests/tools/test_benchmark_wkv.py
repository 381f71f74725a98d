"""Smoke test of tools/benchmark_wkv.py: the table has a row per length and the ratios parse."""
import re

import pytest

import visionmix.ops as ops
from visionmix.commands import benchmark_wkv

pytestmark = [pytest.mark.native]


@pytest.mark.skipif(ops.native_build_error() is not None, reason="native extension unavailable")
def test_benchmark_prints_one_row_per_length_with_exp_ratios(capsys):
    # --system-malloc: the mallopt policy is process-wide and would outlive this test.
    benchmark_wkv.main(["--lengths", "16", "48", "--reps", "1", "--channels", "20",
                        "--paths", "native", "torch", "--system-malloc"])
    out = capsys.readouterr().out
    assert "system malloc (default policy)" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (16|48) \|", line)]
    assert len(rows) == 2
    for row in rows:
        ratios = [float(x) for x in re.findall(r"\(([\d.]+)x\)", row)]
        assert len(ratios) == 4 and all(r > 0 for r in ratios)
