"""Parameter counts of the official models (as the official code counts them), built on the meta device (no memory)."""
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
    "drwkv/drwkv_s2_in256": 39_323_552,
    "drwkv/drwkv_b2_in256": 74_793_632,
    "drwkv/drwkv_m2_in256": 132_623_904,
    "drwkv/drwkv_l2_in256": 439_352_096,
    "drwkv/drwkv_h2_in256": 780_313_632,
    "drwkv/drwkv_b4_in256": 74_775_296,
}

# the official Diffusion-RWKV code's own setting: 32px, 3 channels, unconditional ("779M" = H/2)
OFFICIAL_DRWKV_32PX = {"s2": 38_934_552, "b2": 74_404_632, "m2": 132_105_240, "l2": 438_574_104, "h2": 779_276_312}


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


@pytest.mark.parametrize("name,expected", OFFICIAL_DRWKV_32PX.items())
def test_drwkv_matches_the_official_unconditional_32px_model(name, expected):
    cfg = load_config(ROOT / f"configs/drwkv/drwkv_{name}_in256.py",
                      {"model.backbone.in_channels": 3, "model.backbone.num_classes": 0})
    with torch.device("meta"):
        model = build_model(cfg.model)
    assert count_params(model)[0] == expected


def test_drwkv_swaps_to_softmax_attention_in_the_same_scaffold():
    cfg = load_config(ROOT / "configs/drwkv/drwkv_b2_in256.py", {"model.backbone.mixer": "attention"})
    with torch.device("meta"):
        backbone = build_model(cfg.model).backbone
    assert type(backbone.mid_block.mixer).__name__ == "Attention"
    assert type(backbone.mid_block.ffn).__name__ == "RWKVChannelMix"  # only the token mixer changed
    assert backbone.in_blocks[0].ln0 is not None and backbone.norm_f is not None
