"""Parameter counts of the official models (DESIGN.md section 6), built on the meta device (no memory)."""
from pathlib import Path

import pytest
import torch

from visionmix import build_model
from visionmix.config import load_config
from visionmix.flops import count_params

ROOT = Path(__file__).resolve().parents[1]

OFFICIAL_PARAMS = {
    "dit/dit_s2_in256": 32_963_360,
    "dit/dit_b2_in256": 130_512_416,
    "dit/dit_l2_in256": 458_102_816,
    "dit/dit_xl2_in256": 675_129_632,
    "dit/dit_b4_in256": 130_475_648,
    "dit/dit_s8_in256": 33_148_160,
    "uvit/uvit_h2_in256": 500_832_016,
}


@pytest.mark.parametrize("name,expected", OFFICIAL_PARAMS.items())
def test_parameter_count_matches_the_official_model(name, expected):
    cfg = load_config(ROOT / "configs" / f"{name}.py")
    with torch.device("meta"):
        model = build_model(cfg.model)
    assert count_params(model)[0] == expected


def test_dit_xl2_trainable_count_excludes_the_frozen_table():
    with torch.device("meta"):
        model = build_model(load_config(ROOT / "configs/dit/dit_xl2_in256.py").model)
    assert count_params(model)[1] == 674_834_720
