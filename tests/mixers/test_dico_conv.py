import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import GRIDS, check_contract
from visionmix.mixers.dico_conv import DiCoConv


def reference(m: DiCoConv, x: torch.Tensor, k: int) -> torch.Tensor:
    """1x1 -> dw k×k -> GELU -> x * sigmoid(1x1(mean over H, W)) -> 1x1, as plain F.conv2d calls."""
    dim = x.shape[1]
    y = F.conv2d(x, m.conv1.weight, m.conv1.bias)
    y = F.gelu(F.conv2d(y, m.conv2.weight, m.conv2.bias, padding=k // 2, groups=dim))
    gap = y.sum(dim=(2, 3), keepdim=True) / (y.shape[2] * y.shape[3])
    y = y * torch.sigmoid(F.conv2d(gap, m.ca[1].weight, m.ca[1].bias))
    return F.conv2d(y, m.conv3.weight, m.conv3.bias)


@pytest.mark.parametrize("kernel_size", [3, 7])
@pytest.mark.parametrize("hw", GRIDS)
def test_matches_plain_convolutions_with_gradients(hw, kernel_size):
    mixer = randomize_(DiCoConv(12, kernel_size=kernel_size).double(), std=0.3)
    x = torch.randn(2, 12, *hw, dtype=torch.float64, requires_grad=True)
    out, ref = mixer(x, hw), reference(mixer, x, kernel_size)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    params = [x, *mixer.parameters()]
    grads = torch.autograd.grad(out.square().sum(), params)
    ref_grads = torch.autograd.grad(ref.square().sum(), params)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


def test_contract_and_official_names():
    mixer = DiCoConv(16)
    assert mixer.layout == "grid"
    check_contract(mixer, 16)
    names = {n for n, _ in mixer.named_parameters()}
    assert names == {f"{m}.{p}" for m in ("conv1", "conv2", "ca.1", "conv3") for p in ("weight", "bias")}


def test_init_is_xavier_with_zero_bias():
    mixer = DiCoConv(64)
    bound = (6 / (64 + 64)) ** 0.5  # xavier-uniform bound of a 64->64 1x1 conv
    assert mixer.conv1.weight.abs().max() <= bound and mixer.conv1.weight.abs().max() > 0.9 * bound
    assert not any(m.bias.any() for m in (mixer.conv1, mixer.conv2, mixer.ca[1], mixer.conv3))


def test_even_kernel_is_a_clear_error():
    with pytest.raises(ValueError, match="odd"):
        DiCoConv(8, kernel_size=4)

