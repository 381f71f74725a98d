"""SiT -> visionmix: DiT's network under SiT's names, read by FlowMatching the way SiT's forward reads it."""
import argparse

import pytest
import torch

from tests.converters.helpers import (F64, ROOT, assert_loads_at_full_size, converted_model, dit_forward, dit_shapes,
                                      official_state)
from visionmix.config import load_config
from visionmix.converters import LayoutError, convert
from visionmix.diffusion import FlowMatching

CONFIG = "configs/sit/sit_xl2_in256.py"
TINY = dict(input_size=8, hidden_size=32, depth=2, num_heads=4, num_classes=10)


def tiny_official(seed: int = 0) -> dict:
    return official_state(dit_shapes(depth=2, hidden=32, patch=2, in_channels=4, grid=4, num_classes=10), seed=seed)


def sit_forward(sd, x, t, y):
    """SiT.forward: DiT's forward, then the first half of the learn_sigma channels."""
    return dit_forward(sd, x, t, y, heads=4, patch=2).chunk(2, dim=1)[0]


def test_flow_matching_velocity_is_sits_forward():
    official = tiny_official()
    model = converted_model("sit", official, CONFIG, **TINY)
    assert isinstance(model.diffusion, FlowMatching)
    x, t, y = torch.randn(3, 4, 8, 8, dtype=F64), torch.tensor([0.0, 0.37, 1.0]), torch.tensor([1, 10, 4])
    velocity = model.diffusion.velocity(model.backbone, x, t, dict(y=y))
    torch.testing.assert_close(velocity, sit_forward(official, x, t, y), rtol=1e-10, atol=1e-10)


def test_config_guidance_is_sits_forward_with_cfg():
    """SiT guides the first 3 of its 4 velocity channels; the config's guided_channels must do the same."""
    official = tiny_official()
    model = converted_model("sit", official, CONFIG, **TINY)
    scale, guided = model.sampling["cfg_scale"], model.sampling["guided_channels"]
    x, t, y = torch.randn(2, 4, 8, 8, dtype=F64), torch.tensor([0.5, 0.5]), torch.tensor([7, 10])
    xx, tt, yy = torch.cat([x[:1], x[:1]]), t, y
    out = sit_forward(official, xx, tt, yy)
    eps, rest = out[:, :3], out[:, 3:]
    cond, uncond = eps.chunk(2)
    expected = torch.cat([torch.cat([uncond + scale * (cond - uncond)] * 2), rest], dim=1)
    got = model.diffusion.velocity(lambda a, b, **kw: model.backbone.forward_with_cfg(a, b, cfg_scale=scale,
                                                                                      guided_channels=guided, **kw),
                                   xx, tt, dict(y=yy))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_released_size_loads_strictly():
    assert_loads_at_full_size("sit", dit_shapes(depth=28, hidden=1152, patch=2, in_channels=4, grid=16,
                                                num_classes=1000), CONFIG)


def test_learn_sigma_false_checkpoint_loads_with_the_option():
    shapes = dit_shapes(depth=28, hidden=1152, patch=2, in_channels=4, grid=16, num_classes=1000, learn_sigma=False)
    assert_loads_at_full_size("sit", shapes, CONFIG, learn_sigma=False)


def test_train_py_checkpoint_with_args_unwraps_to_ema():
    ema = tiny_official(seed=3)
    checkpoint = {"model": tiny_official(seed=4), "ema": ema, "opt": {}, "args": argparse.Namespace(model="SiT-XL/2")}
    state = convert("sit", checkpoint)
    assert torch.equal(state["backbone.blocks.0.mixer.qkv.weight"], ema["blocks.0.attn.qkv.weight"])


def test_config_is_dit_xl2_with_flow_matching():
    cfg = load_config(ROOT / CONFIG)
    dit = load_config(ROOT / "configs/dit/dit_xl2_in256.py")
    assert cfg.model.backbone == dit.model.backbone
    assert cfg.model.diffusion["type"] is FlowMatching and cfg.model.sampling["sampler"] == "sde"


def test_a_dico_checkpoint_is_not_taken_for_sit():
    with pytest.raises(LayoutError, match="not the official SiT key layout"):
        convert("sit", {"encoder_level_1.0.conv1.weight": torch.zeros(1)})
