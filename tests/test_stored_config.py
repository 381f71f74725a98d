"""The config stored in a checkpoint is read as data: YAML through the safe loader, old Python text as literals."""
import pytest
import torch

from tests.tools.helpers import ROOT
from visionmix.config import load_config
from visionmix.checkpoint_io import read_checkpoint, trained_with
from visionmix.stored_config import config_as_yaml, python_literals, read_stored_config

MMENGINE_TEXT = """custom_hooks = [
    dict(type='mmengine.hooks.EMAHook', momentum=0.02),
]
model = dict(
    backbone=dict(depth=7, hidden_size=112, mixer=dict(type=BiRWKV), norm_eps=1e-05, scale=-1),
    type='visionmix.models.DiffusionModel')
optim_wrapper = dict(optimizer=dict(lr=0.004, betas=(0.9, 0.999)))
derived = some_function(3)
merged = dict(**other)
"""


def test_python_text_is_parsed_for_literals_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = MMENGINE_TEXT + f"import os\nos.system('touch {marker}')\nx = __import__('os').system('touch {marker}')\n"
    found = python_literals(text)
    assert found["model"]["backbone"] == {"depth": 7, "hidden_size": 112, "mixer": {"type": "BiRWKV"},
                                          "norm_eps": 1e-05, "scale": -1}
    assert found["optim_wrapper"]["optimizer"]["betas"] == (0.9, 0.999)
    assert found["custom_hooks"] == [{"type": "mmengine.hooks.EMAHook", "momentum": 0.02}]
    assert "derived" not in found and "merged" not in found and "x" not in found
    assert not marker.exists()


def test_a_dumped_config_round_trips_as_yaml():
    cfg = load_config(ROOT / "configs/quickstart/drwkv_digits8.py")
    stored = read_stored_config({"cfg": config_as_yaml(cfg), "cfg_format": "yaml"})
    assert stored["model"]["backbone"]["hidden_size"] == 112
    assert stored["model"]["backbone"]["mixer"]["type"] == "visionmix.mixers.BiRWKV"
    assert read_stored_config({"cfg": "a: &a [*a]", "cfg_format": "yaml"}) is None  # unreadable: a nicety lost
    assert read_stored_config({"cfg": "x" * (5 << 20)}) is None


def test_trained_with_reads_old_and_new_checkpoints_without_running_them(tmp_path):
    marker = tmp_path / "ran"
    meta = {"config_file": "/configs/old.py", "cfg": MMENGINE_TEXT + f"__import__('os').system('touch {marker}')\n"}
    assert trained_with({"meta": meta}) == "/configs/old.py (? with BiRWKV: hidden_size=112, depth=7)"
    assert not marker.exists()


def test_reading_a_checkpoint_drops_the_config_mmengine_would_execute(tmp_path):
    torch.save({"meta": {"config": "import os", "cfg": "model = dict()"}, "state_dict": {}}, tmp_path / "c.pth")
    meta = read_checkpoint(str(tmp_path / "c.pth"))["meta"]
    assert "config" not in meta and meta["cfg"] == "model = dict()"


@pytest.mark.parametrize("text", ["model = dict(**{'a': 1})", "model = [x for x in range(3)]", "model = 1 +"])
def test_what_is_not_a_literal_is_left_out(text):
    try:
        assert "model" not in python_literals(text)
    except SyntaxError:
        assert text.endswith("+")
