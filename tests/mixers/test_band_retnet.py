import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import (GRIDS, OnGrid, assert_init_covers_every_parameter, assert_matches_oracle,
                                 check_contract)
from visionmix.flops import count_macs
from visionmix.mixers.band_retnet import BandModulatedRetention
from visionmix.mixers.retnet import ManhattanSelfAttention


def orthonormal_dct(n):
    """D[k, i] = sqrt((1 if k == 0 else 2) / n) cos(π (2i + 1) k / 2n), entry by entry."""
    return torch.tensor([[math.sqrt((1 if k == 0 else 2) / n) * math.cos(math.pi * (2 * i + 1) * k / (2 * n))
                          for i in range(n)] for k in range(n)], dtype=torch.float64)


def dense_band_modulation(mixer, x, hw):
    """x̃_c = D_Hᵀ (M_c ⊙ (D_H x_c D_Wᵀ)) D_W per channel c, M_c[u, v] = w[band(u, v), c] from the radius."""
    h, w = hw
    bands = mixer.num_bands
    band = [[min(int(math.hypot(u / h, v / w) * bands + 1e-9), bands - 1) for v in range(w)] for u in range(h)]
    gain = mixer.band_weight[torch.tensor(band)]  # (H, W, C)
    d_h, d_w = orthonormal_dct(h), orthonormal_dct(w)
    grid = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
    filtered = d_h.T @ ((d_h @ grid @ d_w.T) * gain.permute(2, 0, 1)) @ d_w
    return filtered.flatten(2).transpose(1, 2)


def rotate(x, positions):
    """RoPE as a complex rotation: pair j turns by position * 10000^(-j / (d/2 - 1))."""
    half = x.shape[-1] // 2
    angles = torch.tensor([10000.0 ** (-j / max(half - 1, 1)) for j in range(half)], dtype=torch.float64)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], half, 2).contiguous())
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), positions[:, None] * angles)).flatten(-2)


def dense_axial_retention(ret, x, hw):
    """W_o(A_col (A_row v) + LePE(v)) per head: dense N×N maps, softmax only within a row (|Δc| log γ), then
    only within a column (|Δr| log γ); -inf outside the line."""
    h, w = hw
    n, d, dim = h * w, ret.head_dim, x.shape[-1]
    rows, cols = torch.arange(n) // w, torch.arange(n) % w
    same_row, same_col = rows[:, None] == rows[None], cols[:, None] == cols[None]
    d_col, d_row = (cols[:, None] - cols[None]).abs().double(), (rows[:, None] - rows[None]).abs().double()
    q, k, v = ret.q_proj(x), ret.k_proj(x), ret.v_proj(x)
    conv = ret.lepe.conv
    lepe = F.conv2d(v.transpose(1, 2).reshape(x.shape[0], dim, h, w), conv.weight, conv.bias,
                    padding=conv.kernel_size[0] // 2, groups=dim).flatten(2).transpose(1, 2)
    positions = torch.arange(n, dtype=torch.float64)
    outs = []
    for head in range(ret.num_heads):
        sl = slice(head * d, (head + 1) * d)
        qh, kh = q[..., sl], k[..., sl] / math.sqrt(d)
        if ret.use_theta_shift:
            qh, kh = rotate(qh, positions), rotate(kh, positions)
        log_gamma = math.log(1 - 2 ** (-ret.initial_value - ret.heads_range * head / ret.num_heads))
        logits = qh @ kh.transpose(1, 2)
        a_row = torch.softmax((logits + d_col * log_gamma).masked_fill(~same_row, float("-inf")), -1)
        a_col = torch.softmax((logits + d_row * log_gamma).masked_fill(~same_col, float("-inf")), -1)
        outs.append(a_col @ (a_row @ v[..., sl]))
    return ret.out_proj(torch.cat(outs, -1) + lepe)


def dense_band_retnet(mixer, x, hw):
    return dense_axial_retention(mixer.retention, dense_band_modulation(mixer, x, hw), hw)


def assert_same_outputs_and_gradients(mixer, x, hw):
    out, expected = mixer(x, hw), dense_band_retnet(mixer, x, hw)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-9, atol=1e-10, grad_rtol=1e-8, grad_atol=1e-10)


@pytest.mark.parametrize("hw", GRIDS)
def test_matches_the_dense_oracle_outputs_and_gradients(hw):
    mixer = randomize_(BandModulatedRetention(16, 2).double(), std=0.2)
    with torch.no_grad():
        mixer.band_weight.normal_(1.0, 0.5)
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64, requires_grad=True)
    assert_same_outputs_and_gradients(mixer, x, hw)


def test_other_options_match_the_oracle():
    mixer = randomize_(BandModulatedRetention(12, 3, num_bands=3, theta_shift=False, heads_range=4.0,
                                              lepe_kernel_size=3).double(), std=0.2)
    x = torch.randn(2, 15, 12, dtype=torch.float64, requires_grad=True)
    assert_same_outputs_and_gradients(mixer, x, (3, 5))


@pytest.mark.parametrize("hw", GRIDS)
def test_unit_band_weights_make_the_modulation_the_identity(hw):
    mixer = randomize_(BandModulatedRetention(16, 2), std=0.2).double()
    mixer.init_weights()
    assert torch.equal(mixer.band_weight, torch.ones_like(mixer.band_weight))
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    torch.testing.assert_close(mixer.band_modulation(x, hw), x, rtol=1e-12, atol=1e-12)
    retnet = ManhattanSelfAttention(16, 2, decomposed=True).double()
    retnet.load_state_dict(mixer.retention.state_dict())
    torch.testing.assert_close(mixer(x, hw), retnet(x, hw), rtol=1e-10, atol=1e-12)


def test_keeping_only_the_first_band_of_a_4x4_grid_keeps_the_channel_means():
    mixer = BandModulatedRetention(8, 2, num_bands=4)  # on 4×4, band 0 holds the DC coefficient alone
    with torch.no_grad():
        mixer.band_weight[1:] = 0
    x = torch.randn(2, 16, 8)
    torch.testing.assert_close(mixer.band_modulation(x, (4, 4)), x.mean(1, keepdim=True).expand_as(x))


def test_modulation_runs_in_float32_under_autocast():
    mixer = BandModulatedRetention(16, 2)
    x = torch.randn(2, 35, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        filtered = mixer.band_modulation(x, (5, 7))
        out = mixer(x, (5, 7))
    assert filtered.dtype == torch.float32 and out.dtype == torch.bfloat16
    torch.testing.assert_close(filtered, x, rtol=1e-5, atol=1e-5)  # bf16 transforms would be ~1e-2 off


def test_mixer_contract():
    check_contract(BandModulatedRetention(32, 4), 32)



def test_flop_counter_sees_the_transforms_and_the_axial_products():
    dim, heads, (h, w) = 32, 4, (6, 10)
    n, d = h * w, dim // heads
    macs = count_macs(OnGrid(BandModulatedRetention(dim, heads), (h, w)), (torch.randn(1, n, dim),))
    dct = 2 * dim * n * (h + w)  # DCT and inverse: D_H (H×H) and D_W (W×W) on every channel
    assert macs == 4 * n * dim * dim + 25 * n * dim + heads * n * (h + w) * 2 * d + dct


def test_init_weights_covers_every_parameter():
    mixer = BandModulatedRetention(64, 4)
    assert_init_covers_every_parameter(mixer)
    assert torch.equal(mixer.band_weight, torch.ones(4, 64))
    assert mixer.retention.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.15)


def test_tables_built_while_sampling_serve_training():
    mixer = BandModulatedRetention(16, 2, num_bands=3)
    with torch.inference_mode():
        mixer(torch.randn(1, 39, 16), (3, 13))  # a grid no other test uses: DCT, bands and masks built here
    mixer(torch.randn(1, 39, 16), (3, 13)).sum().backward()
    assert mixer.band_weight.grad is not None


def test_extra_tokens_are_rejected_with_the_remedy():
    remedy = "band_retnet.*H\\*W = 3\\*4 = 12.*got 14.*conditioning='adaln_zero' or 'adaln'"
    with pytest.raises(ValueError, match=remedy):
        BandModulatedRetention(16, 2)(torch.randn(1, 14, 16), (3, 4))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="band_retnet width 30 is not divisible by num_heads=4"):
        BandModulatedRetention(30, 4)
    with pytest.raises(ValueError, match="band_retnet.*head width 5 .* must be even"):
        BandModulatedRetention(20, 4)
    with pytest.raises(ValueError, match="band_retnet num_bands must be a positive integer"):
        BandModulatedRetention(16, 2, num_bands=0)
    BandModulatedRetention(20, 4, theta_shift=False)

