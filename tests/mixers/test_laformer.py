import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import (GRIDS, OnGrid, assert_init_covers_every_parameter, assert_matches_oracle,
                                 check_contract, largest_saved_tensor)
from visionmix.flops import count_macs
from visionmix.mixers.laformer import LAformerAttention

DIM, HEADS = 32, 4


def features(x, feature_map):
    return torch.where(x > 0, x + 1, torch.exp(x)) if feature_map == "elu1" else x.clamp(min=0)


def dense_rela(rela, x, hw):
    """Per head: A = φ(Q)φ(K)ᵀ (N×N), rows divided by their sums (mean form + ε), A V; + explicit depthwise conv2d
    of V on the grid; then W_o."""
    dim, d, n = x.shape[-1], rela.head_dim, x.shape[1]
    q, k, v = rela.qkv(x).split(dim, dim=-1)
    fq, fk = features(q, rela.feature_map), features(k, rela.feature_map)
    heads = []
    for h in range(rela.num_heads):
        sl = slice(h * d, (h + 1) * d)
        scores = fq[..., sl] @ fk[..., sl].transpose(-1, -2)
        heads.append((scores @ v[..., sl]) / n / (scores.sum(-1, keepdim=True) / n + rela.eps))
    conv = rela.rank_conv.conv
    rank = F.conv2d(v.transpose(1, 2).reshape(x.shape[0], dim, *hw), conv.weight, conv.bias,
                    padding=conv.kernel_size[0] // 2, groups=dim)
    return rela.proj(torch.cat(heads, dim=-1) + rank.flatten(2).transpose(1, 2))


def dense_channel_attention(mixer, x):
    """W_c (x ⊙ sigmoid(W_2 relu(W_1 mean_n x + b_1) + b_2)), with every linear written as x Wᵀ + b."""
    pooled = x.sum(dim=1, keepdim=True) / x.shape[1]
    hidden = (pooled @ mixer.squeeze.weight.T + mixer.squeeze.bias).clamp(min=0)
    gate = 1 / (1 + torch.exp(-(hidden @ mixer.excite.weight.T + mixer.excite.bias)))
    return (x * gate) @ mixer.channel_proj.weight.T + mixer.channel_proj.bias


def dense_laformer(mixer, x, hw):
    return dense_rela(mixer.rela, x, hw) + dense_channel_attention(mixer, x)


@pytest.mark.parametrize("feature_map", ["elu1", "relu"])
@pytest.mark.parametrize("hw", GRIDS)
def test_matches_the_dense_oracle_outputs_and_gradients(hw, feature_map):
    mixer = randomize_(LAformerAttention(DIM, HEADS, feature_map=feature_map, rank_enhance=3).double(), 0.1)
    x = torch.randn(2, hw[0] * hw[1], DIM, dtype=torch.float64, requires_grad=True)
    out, expected = mixer(x, hw), dense_laformer(mixer, x, hw)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-9, atol=1e-11, grad_rtol=1e-8, grad_atol=1e-10)


def test_other_kernel_and_reduction_match_the_oracle():
    mixer = randomize_(LAformerAttention(24, 3, rank_enhance=5, channel_reduction=8, qkv_bias=False).double(), 0.1)
    x = torch.randn(2, 35, 24, dtype=torch.float64)
    assert mixer.squeeze.out_features == 3
    torch.testing.assert_close(mixer(x, (5, 7)), dense_laformer(mixer, x, (5, 7)), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("options", [dict(), dict(feature_map="focused", rank_enhance=5, channel_reduction=2)])
def test_contract(options):
    check_contract(LAformerAttention(DIM, HEADS, **options), DIM)


def test_bf16_autocast_stays_close_to_float32_with_a_float32_gate():
    mixer = randomize_(LAformerAttention(DIM, HEADS), 0.1)
    x = torch.randn(2, 35, DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, gate = mixer(x, (5, 7)), mixer.channel_gate(x)
    assert gate.dtype == torch.float32 and low.dtype == torch.bfloat16
    reference = mixer(x, (5, 7))
    assert (low.float() - reference).norm() / reference.norm() < 3e-2


def test_never_builds_an_n_by_n_tensor():
    side = 96
    assert largest_saved_tensor(LAformerAttention(16, 2), side, 16) < (side * side) ** 2 / 64



def test_flop_counter_sees_every_product():
    dim, heads, (h, w) = 32, 4, (6, 10)
    n, d, r = h * w, dim // heads, dim // 4
    macs = count_macs(OnGrid(LAformerAttention(dim, heads), (h, w)), (torch.randn(1, n, dim),))
    # qkv + W_o, the two d×d products, the denominator φ(q)·Σφ(k), the rank conv
    rela = 4 * n * dim * dim + 2 * heads * n * d * d + n * dim + 9 * n * dim
    assert macs == rela + 2 * dim * r + n * dim * dim  # SE MLP on the pooled vector, W_c on every token


def test_init():
    mixer = LAformerAttention(64, 4)
    assert_init_covers_every_parameter(mixer)
    for linear in (mixer.rela.qkv, mixer.squeeze, mixer.excite, mixer.channel_proj):
        assert 0.015 < linear.weight.std() < 0.025 and not linear.bias.any()
    gate = mixer.channel_gate(torch.randn(2, 16, 64))
    torch.testing.assert_close(gate, torch.full_like(gate, 0.5), rtol=0, atol=0.05)


def test_extra_tokens_are_rejected_with_the_remedy():
    with pytest.raises(ValueError, match="laformer.*H\\*W = 3\\*4 = 12.*got 14.*conditioning='adaln_zero' or 'adaln'"):
        LAformerAttention(DIM, HEADS)(torch.randn(1, 14, DIM), (3, 4))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="laformer width 30 is not divisible by num_heads=4"):
        LAformerAttention(30, 4)
    with pytest.raises(ValueError, match="unknown laformer feature_map 'softmax'; known: elu1, relu, focused"):
        LAformerAttention(DIM, HEADS, feature_map="softmax")
    for bad in (0, 4):
        with pytest.raises(ValueError, match="laformer rank_enhance .* odd positive"):
            LAformerAttention(DIM, HEADS, rank_enhance=bad)
    with pytest.raises(ValueError, match="laformer channel_reduction must be an integer in 1..32"):
        LAformerAttention(DIM, HEADS, channel_reduction=64)

