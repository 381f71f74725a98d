import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import GRIDS, check_contract
from visionmix.mixers.conv_mixer import ConvMixer


def reference(m: ConvMixer, x: torch.Tensor, k: int) -> torch.Tensor:
    """proj((dw k×k (GELU(1x1 x))) * (1x1 x)), as plain F.conv2d calls with explicit same padding."""
    dim = x.shape[1]
    a = F.gelu(F.conv2d(x, m.a[0].weight, m.a[0].bias))
    a = F.conv2d(F.pad(a, [k // 2] * 4), m.a[2].weight, m.a[2].bias, groups=dim)
    v = F.conv2d(x, m.v.weight, m.v.bias)
    return F.conv2d(a * v, m.proj.weight, m.proj.bias)


@pytest.mark.parametrize("kernel_size", [3, 9, 13])
@pytest.mark.parametrize("hw", GRIDS)
def test_matches_plain_convolutions_with_gradients(hw, kernel_size):
    mixer = randomize_(ConvMixer(12, kernel_size=kernel_size).double(), std=0.3)
    x = torch.randn(2, 12, *hw, dtype=torch.float64, requires_grad=True)
    out, ref = mixer(x, hw), reference(mixer, x, kernel_size)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    params = [x, *mixer.parameters()]
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), params)
    ref_grads = torch.autograd.grad((ref * weights).sum(), params)
    for name, g, r in zip(["x", *(n for n, _ in mixer.named_parameters())], grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10, msg=lambda msg: f"{name}: {msg}")


def test_receptive_field_is_the_kernel():
    """Output (r, c) depends on input (r', c') iff |r - r'| and |c - c'| are at most k // 2."""
    mixer = randomize_(ConvMixer(4, kernel_size=5).double(), std=0.3)
    x = torch.randn(1, 4, 11, 11, dtype=torch.float64, requires_grad=True)
    mixer(x, (11, 11))[0, :, 5, 5].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0
    expected = torch.zeros(11, 11, dtype=torch.bool)
    expected[3:8, 3:8] = True
    assert torch.equal(reached, expected)


def test_contract_and_official_names():
    mixer = ConvMixer(16)
    assert mixer.layout == "grid" and not mixer.accepts_extra_tokens
    check_contract(mixer, 16)
    check_contract(ConvMixer(16, kernel_size=13), 16)  # kernel larger than every test grid
    names = {n for n, _ in mixer.named_parameters()}
    assert names == {f"{m}.{p}" for m in ("a.0", "a.2", "v", "proj") for p in ("weight", "bias")}
    assert mixer.a[2].weight.shape == (16, 1, 9, 9)  # CFSR's depthwise 9×9 by default


def test_init_is_trunc_normal_with_zero_bias():
    mixer = ConvMixer(64, kernel_size=7)
    with torch.no_grad():
        for p in mixer.parameters():
            p.fill_(float("nan"))
    mixer.init_weights()
    for conv in (mixer.a[0], mixer.a[2], mixer.v, mixer.proj):
        assert 0.015 < conv.weight.std() < 0.025  # timm's trunc_normal_(std=.02), as ConvNeXt
        assert (conv.bias == 0).all()


@pytest.mark.parametrize("kernel_size", [8, 2, 1, 0])
def test_even_or_tiny_kernel_is_a_clear_error(kernel_size):
    with pytest.raises(ValueError, match=r"conv_mixer kernel_size must be an odd integer >= 3"):
        ConvMixer(8, kernel_size=kernel_size)

