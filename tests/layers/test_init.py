import torch
import torch.nn as nn

from visionmix.layers.init import vit_init_, xavier_init_
from visionmix.layers.lepe import DepthwiseConvPE


class OwnsItsInit(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)

    def init_weights(self):
        nn.init.constant_(self.inner.weight, 7.0)
        nn.init.constant_(self.inner.bias, 3.0)


def test_vit_init_follows_timm_and_leaves_parts_that_own_their_init_alone():
    model = nn.Sequential(nn.Linear(256, 512), nn.LayerNorm(8), OwnsItsInit(), DepthwiseConvPE(16, 5, init_std=0.02))
    for p in model.parameters():
        nn.init.constant_(p, 5.0)
    vit_init_(model)
    linear, norm, owner, lepe = model
    assert abs(linear.weight.std().item() - 0.02) < 0.002
    assert torch.equal(linear.bias, torch.zeros(512))
    assert torch.equal(norm.weight, torch.ones(8)) and torch.equal(norm.bias, torch.zeros(8))
    assert (owner.inner.weight == 7.0).all() and (owner.inner.bias == 3.0).all()
    # the LePE conv's own init (trunc-normal .02, zero bias), not a conv reset (uniform +-1/5 from fan-in 25)
    assert abs(lepe.conv.weight.std().item() - 0.02) < 0.004 and torch.equal(lepe.conv.bias, torch.zeros(16))


def test_xavier_init_bounds():
    layer = nn.Linear(300, 100)
    xavier_init_(layer)
    bound = (6 / (300 + 100)) ** 0.5
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    assert torch.equal(layer.bias, torch.zeros(100))


def test_the_scaffold_schemes_touch_only_their_layer_kinds():
    from visionmix.layers.init import trunc_normal_linear_, xavier_linear_, xavier_linear_conv_

    torch.manual_seed(0)
    linear, conv, norm = nn.Linear(64, 32), nn.Conv2d(8, 8, 3), nn.LayerNorm(8)
    before = [m.weight.clone() for m in (conv, norm)]
    xavier_linear_(linear), xavier_linear_(conv), xavier_linear_(norm)
    bound = (6 / (64 + 32)) ** 0.5
    assert linear.weight.abs().max() <= bound and linear.bias.abs().sum() == 0
    assert torch.equal(conv.weight, before[0]) and torch.equal(norm.weight, before[1])  # not Linear: untouched
    trunc_normal_linear_(linear)
    assert 0.015 < linear.weight.std() < 0.025 and linear.bias.abs().sum() == 0  # timm truncates at +-2, not 2 std
    xavier_linear_conv_(conv)
    assert conv.weight.abs().max() <= (6 / (8 * 9 + 8 * 9)) ** 0.5 and conv.bias.abs().sum() == 0
