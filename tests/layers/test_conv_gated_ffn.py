import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers import helpers
from tests.mixers.helpers import GRIDS, assert_matches_oracle
from visionmix.flops import count_macs
from visionmix.layers.conv_gated_ffn import ConvGatedFFN
from visionmix.registry import FFNS, build


def dense_conv_gated(ffn, x, hw, act=F.gelu):
    """fc2(act(dwconv(fc1_g x)) * fc1_v x) with explicit F.linear / F.conv2d calls."""
    gate = F.linear(x, ffn.fc1_g.weight, ffn.fc1_g.bias)
    value = F.linear(x, ffn.fc1_v.weight, ffn.fc1_v.bias)
    conv = ffn.dwconv.conv
    grid = gate.transpose(1, 2).reshape(x.shape[0], -1, *hw)
    gate = F.conv2d(grid, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=grid.shape[1])
    hidden = act(gate.flatten(2).transpose(1, 2)) * value
    return F.linear(hidden, ffn.fc2.weight, ffn.fc2.bias)


@pytest.mark.parametrize("hw", GRIDS)
def test_matches_explicit_linear_and_conv_calls_outputs_and_gradients(hw):
    ffn = randomize_(ConvGatedFFN(16).double(), 0.2)
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64, requires_grad=True)
    out, expected = ffn(x, hw), dense_conv_gated(ffn, x, hw)
    assert_matches_oracle(ffn, x, out, expected, rtol=1e-10, atol=1e-12)


def test_other_options():
    ffn = randomize_(ConvGatedFFN(12, 2.0, kernel_size=5, act="silu", bias=False).double(), 0.2)
    assert ffn.fc1_g.out_features == ffn.fc1_v.out_features == ffn.fc2.in_features == 24
    assert ffn.fc1_g.bias is None and ffn.dwconv.conv.kernel_size == (5, 5)
    x = torch.randn(2, 15, 12, dtype=torch.float64)
    torch.testing.assert_close(ffn(x, (3, 5)), dense_conv_gated(ffn, x, (3, 5), act=F.silu), rtol=1e-10, atol=1e-12)


def test_default_width_matches_a_ratio_4_mlp():
    ffn, mlp = ConvGatedFFN(96), build(FFNS, "mlp", dim=96)
    assert ffn.hidden == 256
    linear = lambda m: sum(p.numel() for n, p in m.named_parameters() if "weight" in n and p.ndim == 2)  # noqa: E731
    assert linear(ffn) == linear(mlp)


def test_registered_as_conv_gated_and_rejects_unknown_options():
    assert isinstance(build(FFNS, "conv_gated", dim=8, layer_id=1, num_layers=3), ConvGatedFFN)
    with pytest.raises(TypeError, match="has no option 'ratio'.*mlp_ratio"):
        build(FFNS, dict(type="conv_gated", ratio=2), dim=8)
    with pytest.raises(ValueError, match="unknown conv_gated activation 'relu'"):
        ConvGatedFFN(8, act="relu")
    with pytest.raises(ValueError, match="conv_gated kernel_size must be an odd positive integer"):
        ConvGatedFFN(8, kernel_size=2)
    with pytest.raises(ValueError, match="conv_gated mlp_ratio=0.01 leaves no hidden channels"):
        ConvGatedFFN(8, 0.01)


def test_shapes_gradients_and_autocast_on_odd_grids():
    ffn = ConvGatedFFN(16)
    for h, w in ((5, 7), (1, 1), (3, 9)):
        out = ffn(torch.randn(2, h * w, 16), (h, w))
        assert out.shape == (2, h * w, 16)
        out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ffn.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ffn(torch.randn(2, 30, 16), (6, 5))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_init():
    ffn = ConvGatedFFN(64)
    with torch.no_grad():
        for p in ffn.parameters():
            p.fill_(7.0)
    ffn.init_weights()
    for name, p in ffn.named_parameters():
        assert not (p == 7.0).any(), name
    for linear in (ffn.fc1_g, ffn.fc1_v, ffn.fc2):
        assert 0.015 < linear.weight.std() < 0.025 and not linear.bias.any()


def test_flop_counter_counts_the_three_linears_and_the_conv():
    class OnGrid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ffn = ConvGatedFFN(24)

        def forward(self, x):
            return self.ffn(x, (6, 10))

    n, dim, hidden = 60, 24, 64
    assert count_macs(OnGrid(), (torch.randn(1, n, dim),)) == 3 * n * dim * hidden + 9 * n * hidden


def test_trains_in_the_quickstart_denoiser(monkeypatch):
    """helpers.assert_trains with the quickstart's FFN swapped for conv_gated in every block."""
    built, build_model = [], helpers.build_model

    def with_conv_gated(model_cfg):
        model_cfg.backbone.ffn = dict(type="conv_gated")
        built.append(build_model(model_cfg))
        return built[-1]

    monkeypatch.setattr(helpers, "build_model", with_conv_gated)
    helpers.assert_trains("attention")
    assert sum(isinstance(m, ConvGatedFFN) for m in built[0].modules()) == 3  # one per block (depth 3)
