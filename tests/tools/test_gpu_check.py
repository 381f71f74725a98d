"""tools/gpu_check.py here (no GPU): the no-CUDA exit, and its comparison code run CPU against CPU."""
from __future__ import annotations

import pytest
import torch

import visionmix.ops as ops
from tests.tools.helpers import load_script

gpu_check = load_script("gpu_check")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_exits_0(tmp_path, capsys):
    log = tmp_path / "gpu_check.log"
    assert gpu_check.main(["--log", str(log)]) == 0
    assert "no CUDA" in capsys.readouterr().out and "no CUDA" in log.read_text()


def test_sections_keep_their_order_and_wkv_needs_the_build():
    assert gpu_check.parse_args(["--sections", "mixers,wkv"]).sections == ["build", "wkv", "mixers"]
    assert gpu_check.parse_args([]).sections == list(gpu_check.SECTIONS)


def test_relative_error_floors_exact_zeros_and_catches_nan():
    assert gpu_check.rel_err(torch.full((3,), 1e-7), torch.zeros(3)) == pytest.approx(1e-5)
    assert gpu_check.rel_err(torch.tensor([float("nan")]), torch.ones(1)) == float("inf")


@pytest.mark.skipif(ops.native_build_error() is not None, reason="native extension unavailable")
def test_wkv_comparison_passes_for_the_cpu_op_against_itself():
    assert gpu_check.compare_wkv("cpu", [(2, 1, 5), (1, 45, 7)]).startswith("4 cases")


def test_mixer_comparison_covers_every_registered_mixer_on_cpu():
    detail = gpu_check.check_mixers("cpu")
    from visionmix.registry import list_mixers

    assert all(name in detail for name in list_mixers())
