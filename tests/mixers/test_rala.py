import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import GRIDS, assert_matches_oracle, check_contract, largest_saved_tensor
from visionmix.mixers.rala import RankAugmentedLinearAttention

DIM, HEADS = 32, 4  # head width 8: two rotated pairs per axis


def rope_matrices(hw: tuple[int, int], d: int) -> torch.Tensor:
    """(N, d, d) block-diagonal rotations: pair m < d/4 by row·θ_m, pair d/4 + m by col·θ_m (RALA's RoPE)."""
    h, w = hw
    theta = [10000.0 ** (-m / (d // 4 - 1)) for m in range(d // 4)]
    mats = torch.zeros(h * w, d, d, dtype=torch.float64)
    for n in range(h * w):
        for m, phi in enumerate([n // w * t for t in theta] + [n % w * t for t in theta]):
            c, s = math.cos(phi), math.sin(phi)
            mats[n, 2 * m:2 * m + 2, 2 * m:2 * m + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return mats


def dense_rala(mixer: RankAugmentedLinearAttention, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Per head: α = N softmax(mean(q) k^T / √d), k̂ = α k; A = (R q)(R k̂)^T (N×N) normalised by the rows of
    the un-rotated q k̂^T; plus LePE as an explicit depthwise conv2d of V; gated by G; projected."""
    b, n, dim = x.shape
    d = mixer.head_dim
    q, k, v, gate = mixer.qkv_gate(x).split(dim, dim=-1)
    q, k = F.elu(q) + 1, F.elu(k) + 1
    rot = rope_matrices(hw, d)
    heads = []
    for h in range(mixer.num_heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh, vh = q[..., sl], k[..., sl], v[..., sl]
        alpha = n * torch.softmax(qh.mean(dim=1, keepdim=True) @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        kh = kh * alpha.transpose(1, 2)
        q_rot, k_rot = torch.einsum("nij,bnj->bni", rot, qh), torch.einsum("nij,bnj->bni", rot, kh)
        numerator = (q_rot @ k_rot.transpose(1, 2)) @ vh / n
        denominator = (qh @ kh.transpose(1, 2)).sum(-1, keepdim=True) / n + mixer.eps
        heads.append(numerator / denominator)
    out = torch.cat(heads, dim=-1)
    conv = mixer.lepe.conv
    grid = v.transpose(1, 2).reshape(b, dim, *hw)
    lepe = F.conv2d(grid, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=dim)
    return mixer.proj((out + lepe.flatten(2).transpose(1, 2)) * gate)


@pytest.mark.parametrize("hw", GRIDS)
def test_matches_dense_oracle_outputs_and_gradients(hw):
    mixer = randomize_(RankAugmentedLinearAttention(DIM, HEADS).double(), 0.1)
    x = torch.randn(2, hw[0] * hw[1], DIM, dtype=torch.float64, requires_grad=True)
    out, expected = mixer(x, hw), dense_rala(mixer, x, hw)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-9, atol=1e-11, grad_rtol=1e-8, grad_atol=1e-10)


def test_rope_makes_it_position_aware():
    """Without LePE and RoPE the mixer would be permutation-equivariant (α and the state are global); with
    RoPE, shuffling the tokens changes more than their order."""
    mixer = randomize_(RankAugmentedLinearAttention(DIM, HEADS, lepe_kernel_size=0).double(), 0.3)
    x = torch.randn(1, 20, DIM, dtype=torch.float64)
    perm = torch.randperm(20)
    assert not torch.allclose(mixer(x[:, perm], (4, 5)), mixer(x, (4, 5))[:, perm], atol=1e-6)


def test_contract():
    check_contract(RankAugmentedLinearAttention(DIM, HEADS), DIM)
    check_contract(RankAugmentedLinearAttention(24, 2, lepe_kernel_size=3, qkv_bias=False), 24)  # d = 12


def test_bf16_autocast_stays_close_to_float32():
    mixer = randomize_(RankAugmentedLinearAttention(DIM, HEADS), 0.1)
    x = torch.randn(2, 35, DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x, (5, 7))
    reference = mixer(x, (5, 7))
    assert (low.float() - reference).norm() / reference.norm() < 3e-2


def test_never_builds_an_n_by_n_tensor():
    side = 96
    assert largest_saved_tensor(RankAugmentedLinearAttention(16, 2), side, 16) < (side * side) ** 2 / 64


def test_init_follows_the_official_code():
    mixer = RankAugmentedLinearAttention(64, 4)
    assert mixer.qkv_gate.bias.abs().sum() == 0 and mixer.proj.bias.abs().sum() == 0
    assert mixer.lepe.conv.bias.abs().sum() == 0
    for weight in (mixer.qkv_gate.weight, mixer.lepe.conv.weight):
        assert 0.015 < weight.std() < 0.025  # trunc-normal(.02), not PyTorch's fan-in default


def test_extra_tokens_are_rejected_with_a_pointer_to_adaln():
    with pytest.raises(ValueError, match="rala needs exactly H\\*W.*conditioning='adaln_zero' or 'adaln'"):
        RankAugmentedLinearAttention(DIM, HEADS)(torch.randn(1, 2 + 12, DIM), (3, 4))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        RankAugmentedLinearAttention(30, 4)
    with pytest.raises(ValueError, match="even and >= 4"):
        RankAugmentedLinearAttention(12, 4)  # head width 3
    with pytest.raises(ValueError, match="odd positive"):
        RankAugmentedLinearAttention(DIM, HEADS, lepe_kernel_size=4)

