"""tools/sample.py and tools/eval_digits.py with ``--checkpoint zoo:NAME``: no CONFIG needed, outputs under
``samples/NAME/`` in the current folder, grids one row per class; the download cache lives in ``TORCH_HOME`` (tmp).

The zoo is a table written in tmp (tests/test_hub.py's tiny digits row) served through a ``file://`` URL.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.test_hub import make_tiny_zoo, url_row
from tests.tools.helpers import load_tool
from visionmix import hub
from visionmix.cli import run_tool

sample = load_tool("sample")
eval_digits = load_tool("eval_digits")


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    made = make_tiny_zoo(tmp_path / "zoo")
    url_row(made, made["sha256"], url=made["weights"].as_uri())
    monkeypatch.setattr(hub, "TABLE", made["table"])
    made["cache"] = tmp_path / "torch" / "hub" / "checkpoints" / "visionmix"
    return made


def call(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = run_tool(sample.main, args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


def test_zoo_checkpoint_needs_no_config_and_writes_a_grid_per_class(zoo, tmp_path, capsys):
    code, err = call(["--checkpoint", "zoo:tiny", "--num", "6", "--labels", "2", "5", "--steps", "1",
                      "--device", "cpu"], capsys)
    assert code == 0, err
    out = tmp_path / "samples" / "tiny"
    assert sorted(p.name for p in out.iterdir()) == ["samples_6_cfg1.0.npz", "samples_6_cfg1.0.png"]
    assert np.load(out / "samples_6_cfg1.0.npz")["labels"].tolist() == [2, 5, 2, 5, 2, 5]
    grid = np.asarray(Image.open(out / "samples_6_cfg1.0.png"))
    # two classes of three 8x8 samples, 1-pixel frames: 19 x 28 pixels, scaled by a whole factor to >= 256
    factor = grid.shape[0] // 19
    assert grid.shape[:2] == (19 * factor, 28 * factor) and min(grid.shape[:2]) >= 256
    assert (zoo["cache"] / "tiny.safetensors").is_file()


def test_bad_labels_fail_before_the_download(zoo, capsys):
    code, err = call(["--checkpoint", "zoo:tiny", "--labels", "10", "--device", "cpu"], capsys)
    assert code == 2 and err.startswith("error: --labels: 10 is not a class of this model"), err
    assert not zoo["cache"].exists()


def test_unknown_zoo_name_and_missing_config_are_one_line_errors(zoo, tmp_path, capsys):
    code, err = call(["--checkpoint", "zoo:tiyn", "--device", "cpu"], capsys)
    assert code == 1 and err.startswith("error: unknown zoo model 'tiyn' (did you mean 'tiny'?)"), err
    code, err = call(["--checkpoint", str(tmp_path / "x.pth")], capsys)
    assert code == 2 and err.startswith("error: CONFIG is required with a local checkpoint"), err
    assert not (tmp_path / "samples").exists()


def test_eval_digits_scores_a_zoo_model_and_writes_class_rows(zoo, tmp_path, capsys):
    assert eval_digits.main(["--checkpoint", "zoo:tiny", "--per-class", "2", "--cfg-scales", "1", "--steps", "1"]) == 0
    assert "| 8 | 1 |" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "samples" / "tiny" / "digits_cfg1.png"))
    factor = grid.shape[0] // 91  # ten rows (digits) of two 8x8 samples with 1-pixel frames: 91 x 19
    assert grid.shape[:2] == (91 * factor, 19 * factor) and min(grid.shape[:2]) >= 256
