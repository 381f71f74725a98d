from pathlib import Path

import pytest
import torch

from visionmix import build_model
from visionmix.config import ConfigError, load_config
from visionmix.mixers.attention import Attention

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*/*.py") if p.parent.name != "_base_")
SMALL = {"hidden_size": 64, "depth": 3, "num_heads": 4}
SMALL_UNET = {"hidden_size": 16, "depths": [1, 1, 1, 1, 1]}


def small(cfg):
    cfg.model.backbone.update(SMALL_UNET if "depths" in cfg.model.backbone else SMALL)
    return cfg


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_loads_and_builds_small(path):
    cfg = small(load_config(path))
    model = build_model(cfg.model)
    h, w = model.backbone.input_size
    x = torch.randn(1, model.backbone.in_channels, h, w)
    assert model(x, torch.tensor([1]), mode="tensor", timesteps=torch.tensor([3])).shape[-2:] == (h, w)


def test_bare_mixer_name_replaces_the_whole_mixer_dict():
    path = ROOT / "configs/uvit/uvit_h2_in256.py"
    assert load_config(path).model.backbone.mixer["qkv_bias"] is False
    cfg = small(load_config(path, {"model.backbone.mixer": "attention"}))
    assert cfg.model.backbone.mixer == "attention"
    block = build_model(cfg.model).backbone.in_blocks[0]
    assert block.mixer.qkv.bias is not None  # the old qkv_bias=False did not leak into the swap


def test_dict_swap_with_delete_drops_old_keys():
    path = ROOT / "configs/uvit/uvit_h2_in256.py"
    cfg = load_config(path, {"model.backbone.mixer._delete_": True, "model.backbone.mixer.type": "attention",
                             "model.backbone.mixer.qk_norm": True})
    assert dict(cfg.model.backbone.mixer) == {"type": "attention", "qk_norm": True}


def test_yaml_dump_round_trip_builds_the_identical_model(tmp_path):
    cfg = small(load_config(ROOT / "configs/dit/dit_s2_in256.py"))
    cfg.dump(str(tmp_path / "dit.yaml"))
    again = load_config(tmp_path / "dit.yaml")
    torch.manual_seed(0)
    a = build_model(cfg.model)
    torch.manual_seed(0)
    b = build_model(again.model)
    assert isinstance(b.backbone.blocks[0].mixer, Attention)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_yaml_is_read_with_a_safe_loader(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML: could not determine a constructor for the tag "
                       r"'tag:yaml.org,2002:python/object/apply:os.system' in \"\S+bad.yaml\", line 1"):
        load_config(bad)


def test_missing_config_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config(tmp_path / "nope.py")
