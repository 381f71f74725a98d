"""SampleGridHook: a grid every `interval` iterations, named by the iterations done, plus one at the end."""
import pytest
from PIL import Image

from tests.tools.helpers import load_tool, sample_grid_hook, tiny_digits_config
from visionmix.engine import VisionMixRunner

train = load_tool("train")


def run_tiny(tmp_path, max_iters: int, interval: int):
    cfg = tiny_digits_config(tmp_path / "run", max_iters=max_iters, checkpoint_interval=100)
    sample_grid_hook(cfg).update(interval=interval, per_class=2, num_classes_shown=3)
    args = train.parse_args(["unused.py", "--work-dir", cfg.work_dir])
    VisionMixRunner.from_cfg(train.apply_args(cfg, args)).train()
    return sorted(p.name for p in (tmp_path / "run/samples").glob("*.png")), tmp_path / "run/samples"


@pytest.mark.parametrize("max_iters, interval, expected", [
    (4, 2, ["iter_0000002.png", "iter_0000004.png"]),  # the end falls on the interval: no second grid
    (3, 2, ["iter_0000002.png", "iter_0000003.png"]),  # the end is off the interval: a last grid
])
def test_grids_are_named_by_completed_iterations(tmp_path, max_iters, interval, expected):
    names, folder = run_tiny(tmp_path, max_iters, interval)
    assert names == expected
    # 3 classes as rows of 2 samples, 8x8 pixels each with 1-pixel padding: 19 x 28 px, upscaled x14 so that
    # the shorter side reaches 256 px
    assert Image.open(folder / expected[0]).size == ((2 * 9 + 1) * 14, (3 * 9 + 1) * 14)
