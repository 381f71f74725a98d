"""The mixer contract (visionmix/contract.py), checked for every registered token mixer and FFN at once.

A mixer or FFN added later is covered here without writing these tests again: shapes on odd and non-square grids,
gradients to every parameter, bf16 autocast, init that rewrites every parameter, float64 agreeing with float32,
both layouts of a block giving the same result, extra condition tokens taken or refused as declared, and a few
AdamW steps that lower a held-out loss in both scaffolds. The registries refuse a part that breaks the contract.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from tests.mixers.helpers import assert_init_covers_every_parameter, assert_trains, check_contract
from visionmix.backbones.block import Block
from visionmix.contract import Grid, TokenMixer, check_part_class
from visionmix.layers.layout import to_layout
from visionmix.registry import FFNS, MIXERS, build, list_ffns, list_mixers

DIM, HEADS = 32, 4


def part(registry, name: str) -> nn.Module:
    torch.manual_seed(0)
    built = build(registry, name, dim=DIM, num_heads=HEADS) if registry is MIXERS else build(registry, name, dim=DIM)
    built.init_weights()
    return built


def check_float64_agrees(module: nn.Module, hw: tuple[int, int] = (5, 6)) -> None:
    """The same parameters in float64 give the float32 result to float32 precision."""
    grid_layout = module.layout == "grid"
    x = torch.randn(2, DIM, *hw) if grid_layout else torch.randn(2, hw[0] * hw[1], DIM)
    wide = copy.deepcopy(module).double()
    out32, out64 = module.eval()(x, hw), wide.eval()(x.double(), hw)
    torch.testing.assert_close(out32, out64.float(), rtol=2e-4, atol=2e-5)


def check_layouts_agree(mixer: str | dict, ffn: str | dict = "mlp", hw: tuple[int, int] = (5, 7)) -> None:
    """A block built in the token layout and one built in the grid layout, with the same weights, agree: each part
    runs in its own layout either way, converted once at the block's edges."""
    torch.manual_seed(0)
    tokens = Block(DIM, HEADS, mixer=mixer, ffn=ffn, layout="tokens", cond_dim=DIM)
    grid = Block(DIM, HEADS, mixer=mixer, ffn=ffn, layout="grid", cond_dim=DIM)
    for p in tokens.parameters():
        nn.init.normal_(p, std=0.1)  # adaLN-Zero starts at zero: make every branch count
    grid.load_state_dict(tokens.state_dict())
    x, c = torch.randn(2, hw[0] * hw[1], DIM), torch.randn(2, DIM)
    torch.testing.assert_close(to_layout(grid(to_layout(x, "grid", hw), c, hw), "tokens", hw), tokens(x, c, hw),
                               rtol=1e-5, atol=1e-5)


def check_extra_tokens(module: nn.Module, hw: tuple[int, int] = (3, 4), extra: int = 2) -> None:
    """Condition tokens in front of the grid: carried by parts that declare so, a clear error from the others."""
    if module.layout == "grid":
        return
    x = torch.randn(2, extra + hw[0] * hw[1], DIM)
    if module.accepts_extra_tokens:
        assert module(x, Grid(hw, extra_tokens=extra)).shape == x.shape
    else:
        with pytest.raises(ValueError, match=rf"needs exactly H\*W = {hw[0]}\*{hw[1]} = {hw[0] * hw[1]} grid tokens"):
            module(x, Grid(hw, extra_tokens=extra))


MIXER_NAMES, FFN_NAMES = list_mixers(), list_ffns()


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_every_mixer_obeys_the_contract(name):
    cls = MIXERS.get(name)
    check_part_class(cls, TokenMixer)
    mixer = part(MIXERS, name)
    check_contract(mixer, DIM)
    assert_init_covers_every_parameter(mixer)
    check_float64_agrees(mixer)
    check_extra_tokens(mixer)
    check_layouts_agree(name)


@pytest.mark.parametrize("name", FFN_NAMES)
def test_every_ffn_obeys_the_contract(name):
    ffn = part(FFNS, name)
    check_contract(ffn, DIM)
    assert_init_covers_every_parameter(ffn)
    check_float64_agrees(ffn)
    check_extra_tokens(ffn)
    check_layouts_agree("attention", ffn=name)


@pytest.mark.parametrize("scaffold", ["isotropic", "unet"])
@pytest.mark.parametrize("name", MIXER_NAMES)
def test_every_mixer_trains_in_both_scaffolds(name, scaffold):
    assert_trains(name, scaffold=scaffold)


@pytest.mark.parametrize("name", FFN_NAMES)
def test_every_ffn_trains(name):
    assert_trains("attention", ffn=name)


class ToyShift(TokenMixer):
    """A grid mixer written for this test: each pixel plus a learned share of its right neighbour."""

    layout = "grid"

    def __init__(self, dim: int, num_heads: int | None = None, *, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        self.share = nn.Parameter(torch.empty(dim))
        self.proj = nn.Conv2d(dim, dim, 1)
        self.init_weights()

    def init_weights(self, scheme=None) -> None:
        nn.init.constant_(self.share, 0.5)
        nn.init.xavier_uniform_(self.proj.weight.flatten(1))
        nn.init.zeros_(self.proj.bias)

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.proj(x + self.share.view(1, -1, 1, 1) * torch.roll(x, -1, dims=3))


@pytest.fixture
def toy_registered():
    MIXERS.register_module(name="toy_shift", force=True)(ToyShift)
    yield "toy_shift"
    MIXERS.module_dict.pop("toy_shift")


def test_a_mixer_written_in_one_class_passes_every_generic_check(toy_registered):
    mixer = part(MIXERS, toy_registered)
    check_contract(mixer, DIM)
    assert_init_covers_every_parameter(mixer)
    check_float64_agrees(mixer)
    check_extra_tokens(mixer)
    check_layouts_agree(toy_registered)
    assert_trains(toy_registered, scaffold="isotropic", iters=20)


def test_registration_refuses_a_part_that_breaks_the_contract():
    del_layout = type("NoLayout", (TokenMixer,), {"init_weights": ToyShift.init_weights, "mix": ToyShift.mix})
    with pytest.raises(TypeError, match="'NoLayout' declares no layout: set layout = one of tokens, grid"):
        MIXERS.register_module(name="no_layout")(del_layout)
    no_init = type("NoInit", (TokenMixer,), {"layout": "tokens", "mix": ToyShift.mix})
    with pytest.raises(TypeError, match="'NoInit' does not define init_weights()"):
        MIXERS.register_module(name="no_init")(no_init)
    with pytest.raises(TypeError, match="'Linear' is not a TokenMixer"):
        MIXERS.register_module(name="linear")(nn.Linear)
    with pytest.raises(TypeError, match="is not a TokenMixer"):  # a dotted path bypasses registration, not the check
        build(MIXERS, "torch.nn.Identity", dim=DIM, num_heads=HEADS)
    assert not {"no_layout", "no_init", "linear"} & set(MIXERS.module_dict)


def test_the_init_check_catches_a_parameter_init_weights_forgets():
    class Forgetful(ToyShift):
        def __init__(self, dim: int, **kwargs):
            super().__init__(dim, **kwargs)
            self.extra = nn.Parameter(torch.zeros(dim))

    with pytest.raises(AssertionError, match="init_weights\\(\\) leaves extra as it was"):
        assert_init_covers_every_parameter(Forgetful(DIM))


def test_a_mixer_sees_the_grid_its_scaffold_describes():
    seen = []

    class Spy(ToyShift):
        layout = "tokens"
        accepts_extra_tokens = True

        def mix(self, x, grid):
            seen.append(grid)
            return x

    MIXERS.register_module(name="spy", force=True)(Spy)
    try:
        block = Block(DIM, HEADS, mixer="spy", conditioning="in_context", layer_id=3, num_layers=5)
        block(torch.randn(1, 2 + 12, DIM), None, Grid((3, 4), extra_tokens=2, context={"scan": "zigzag"}))
    finally:
        MIXERS.module_dict.pop("spy")
    assert seen == [Grid((3, 4), extra_tokens=2, layer_id=3, context={"scan": "zigzag"})]
