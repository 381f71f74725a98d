"""visionmix.config_values: every tool refuses an out-of-range size, count or step when the config is loaded."""
import pytest

from tests.tools.helpers import ROOT
from visionmix.config import load_config
from visionmix.config_values import RULES

DIGITS = ROOT / "configs/quickstart/drwkv_digits8.py"
DICO = ROOT / "configs/dico/dico_s_in256.py"


@pytest.mark.parametrize("key, value, kind", [
    ("train_cfg.max_iters", "abc", "a positive integer"), ("train_cfg.max_iters", 0, "a positive integer"),
    ("train_cfg.max_iters", 2.5, "a positive integer"), ("train_cfg.max_iters", True, "a positive integer"),
    ("model.backbone.depth", -3, "a positive integer"), ("model.backbone.hidden_size", 0, "a positive integer"),
    ("model.backbone.input_size", -8, "a positive integer"), ("model.sampling.steps", 0, "a positive integer"),
    ("model.sampling.cfg_scale", -1.0, "a number >= 0"), ("train_dataloader.num_workers", -1, "an integer >= 0"),
    ("optim_wrapper.optimizer.lr", "fast", "a number >= 0"), ("default_hooks.logger.interval", 0,
                                                               "a positive integer"),
])
def test_out_of_range_values_name_the_key_and_the_range(key, value, kind):
    with pytest.raises(ValueError, match=f"^{key} must be {kind}, got {value!r}$".replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        load_config(DIGITS, {key: value})


def test_hooks_in_a_list_and_per_level_depths_are_checked_too():
    with pytest.raises(ValueError, match=r"^custom_hooks\[3\]\.interval must be a positive integer, got 0$"):
        load_config(DIGITS, {"custom_hooks.sample_grid.interval": 0})
    with pytest.raises(ValueError, match=r"^model\.backbone\.depths must be a list of positive integers, got \[5, 0"):
        load_config(DICO, {"model.backbone.depths": [5, 0, 4, 4, 4]})


def test_every_shipped_config_passes():
    configs = [p for p in sorted((ROOT / "configs").rglob("*.py")) if "_base_" not in p.parts]
    assert len(configs) > 40 and len(RULES) >= 15
    for path in configs:
        load_config(path)
