import functools

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import (GRIDS, OnGrid, assert_matches_oracle,
                                 assert_trains, check_contract, largest_saved_tensor)
from visionmix.flops import count_macs
from visionmix.layers import neighborhood
from visionmix.layers.rope import RoPE2d
from visionmix.mixers.sparse_scan_attention import SparseScanAttention, fixed_scan_passes, scan_passes

DIM, HEADS = 16, 2  # head width 8: RoPE rotates two pairs per axis


def natten_axis(n: int, k: int, d: int) -> list[list[int]]:
    """Per index, the keys of NATTEN's window on one axis (kernel and dilation first clamped to the axis, as
    the mixer documents: kernel min(k, n), dilation max(1, min(d, n // kernel)); a kernel spanning the axis
    sees all of it)."""
    k = min(k, n)
    d = max(1, min(d, n // k))
    if k == n:
        return [list(range(n))] * n
    ns, out = k // 2, []
    for i in range(n):
        if d == 1:
            start = max(i - ns, 0) + (i + ns >= n) * (n - i - ns - 1)
        elif i - ns * d < 0:
            start = i % d
        elif i + ns * d >= n:
            a, b = (n // d) * d, n % d
            start = n - b + i % d - 2 * ns * d if i % d < b else a + i % d - k * d
        else:
            start = i - ns * d
        out.append([start + d * t for t in range(k)])
    return out


@functools.lru_cache(maxsize=None)
def natten_mask(hw: tuple[int, int], k: int, d: int) -> torch.Tensor:
    h, w = hw
    rows, cols = natten_axis(h, k, d), natten_axis(w, k, d)
    mask = torch.zeros(h * w, h * w, dtype=torch.bool)
    for i in range(h * w):
        for r in rows[i // w]:
            for c in cols[i % w]:
                mask[i, r * w + c] = True
    return mask


def dense_s3a(mixer: SparseScanAttention, x: torch.Tensor, hw: tuple[int, int], passes) -> torch.Tensor:
    """Dense N×N softmax attention under each pass's explicit NATTEN mask, chained over the values; + LePE."""
    b, n, dim = x.shape
    d = mixer.head_dim
    q, k, v = mixer.qkv(x).split(dim, dim=-1)
    rope = RoPE2d(d)
    out = []
    for h in range(mixer.num_heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh, vh = rope(q[..., sl], hw), rope(k[..., sl], hw), v[..., sl]
        for kernel, dilation in passes:
            logits = (qh @ kh.transpose(1, 2) / d ** 0.5).masked_fill(~natten_mask(hw, kernel, dilation), float("-inf"))
            vh = torch.softmax(logits, dim=-1) @ vh
        out.append(vh)
    conv = mixer.lepe.conv
    lepe = F.conv2d(v.transpose(1, 2).reshape(b, dim, *hw), conv.weight, conv.bias, padding=conv.padding, groups=dim)
    return mixer.proj(torch.cat(out, dim=-1) + lepe.flatten(2).transpose(1, 2))


CASES = [(hw, k, d) for hw in GRIDS for k in (3, 5) for d in (1, 2)]


def check_against_oracle(mixer: SparseScanAttention, hw: tuple[int, int], passes) -> None:
    x = torch.randn(2, hw[0] * hw[1], DIM, dtype=torch.float64, requires_grad=True)
    out, expected = mixer(x, hw), dense_s3a(mixer, x, hw, passes)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hw, kernel, dilation", CASES)
def test_single_pass_matches_dense_natten_oracle(hw, kernel, dilation):
    mixer = randomize_(SparseScanAttention(DIM, HEADS, kernel_size=kernel, dilation=dilation).double(), 0.3)
    check_against_oracle(mixer, hw, [(kernel, dilation)])


@pytest.mark.parametrize("schedule", ["fixed", "official"])
@pytest.mark.parametrize("hw, kernel, layer_id", [((16, 16), 5, 0), ((16, 16), 5, 1), ((16, 16), 3, 0),
                                                  ((5, 7), 3, 1), ((4, 4), 3, 0)])
def test_scan_matches_chained_dense_oracle(hw, kernel, layer_id, schedule):
    mixer = SparseScanAttention(DIM, HEADS, kernel_size=kernel, layer_id=layer_id, schedule=schedule)
    check_against_oracle(randomize_(mixer.double(), 0.3), hw, mixer.passes(hw))


def test_fixed_schedule_keeps_k_squared_anchors_spanning_the_grid():
    # two 7x7 passes at every size; the sparse one's dilation m // 7 keeps its 7 anchors across the whole side
    for side, stride in ((14, 2), (32, 4), (64, 9), (128, 18)):
        assert fixed_scan_passes((side, side + 3), 7, False) == [(7, 1), (7, stride)]
        assert fixed_scan_passes((side + 3, side), 7, True) == [(7, stride), (7, 1)]
        assert 7 * stride <= side < 7 * (stride + 1)
    assert fixed_scan_passes((13, 40), 7, False) == [(7, 1)]  # anchors one apart would repeat the local pass
    # where the official rule already uses 7x7 anchors, the two schedules agree
    assert fixed_scan_passes((49, 49), 7, False) == scan_passes((49, 49), 7, False)
    assert fixed_scan_passes((56, 56), 7, True)[0] == scan_passes((56, 56), 7, True)[1]
    assert SparseScanAttention(8, 2).passes((64, 64)) == [(7, 1), (7, 9)]
    assert SparseScanAttention(8, 2, schedule="official").passes((64, 64)) == [(7, 1), (9, 7)]


def test_scan_schedule_is_the_official_one():
    # SSViT (window 7) at 224 px: stage grids 56 / 28 / 14 / 7; (kernel, dilation) per pass as its S3A runs them
    assert scan_passes((56, 56), 7, False) == [(7, 1), (9, 6)] and scan_passes((56, 56), 7, True) == [(9, 1), (7, 8)]
    assert scan_passes((28, 28), 7, False) == [(7, 1), (5, 5)] and scan_passes((28, 28), 7, True) == [(5, 1), (7, 4)]
    assert scan_passes((14, 14), 7, False) == [(7, 1), (3, 4)] and scan_passes((14, 14), 7, True) == [(3, 1), (7, 2)]
    assert scan_passes((7, 7), 7, False) == [(7, 1)] and scan_passes((7, 7), 7, True) == [(7, 1)]
    assert scan_passes((3, 20), 7, True) == [(7, 1)]  # a grid under the window: one (clamped) pass, no error
    assert [SparseScanAttention(8, 2, layer_id=i).reverse for i in range(3)] == [False, True, False]
    assert SparseScanAttention(8, 2, dilation=3, layer_id=1).passes((56, 56)) == [(7, 3)]


@pytest.mark.parametrize("hw, kernel, dilation", [((16, 16), 5, 2), ((5, 7), 3, 2), ((9, 12), 3, 3)])
def test_every_query_sees_exactly_k_squared_keys(hw, kernel, dilation):
    mask = natten_mask(hw, kernel, dilation)
    assert (mask.sum(-1) == kernel * kernel).all()
    index = neighborhood.neighborhood_index(*hw, kernel, dilation, torch.device("cpu"))
    assert all(len(set(row.tolist())) == kernel * kernel for row in index)


def test_memory_is_linear_never_n_by_n():
    side, n, dim = 96, 96 * 96, 8
    local = largest_saved_tensor(SparseScanAttention(dim, 2, kernel_size=7, dilation=1), side, dim)
    assert local <= n * 49 * dim < n * n / 20
    scan = largest_saved_tensor(SparseScanAttention(dim, 2), side, dim)  # sparse pass: 13×13 keys
    assert scan <= n * 169 * dim < n * n / 5


def test_index_is_cached_not_rebuilt_per_forward():
    mixer, x = SparseScanAttention(DIM, HEADS, kernel_size=3), torch.randn(1, 99, DIM)
    mixer(x, (9, 11))
    misses = neighborhood.neighborhood_index.cache_info().misses
    mixer(x, (9, 11))
    assert neighborhood.neighborhood_index.cache_info().misses == misses


def test_flop_counter_sees_both_passes():
    n = 256
    macs = count_macs(OnGrid(SparseScanAttention(DIM, HEADS, schedule="official"), (16, 16)), (torch.randn(1, n, DIM),))
    keys = 7 * 7 + 3 * 3  # passes (7, 1) and (3, 5) at 16×16
    assert macs == n * DIM * 4 * DIM + 2 * n * keys * DIM + n * DIM * 25  # projections, q·k and a·v, LePE


def test_contract():
    check_contract(SparseScanAttention(DIM, HEADS, kernel_size=3), DIM)
    check_contract(SparseScanAttention(DIM, HEADS, kernel_size=5, dilation=2, lepe_kernel_size=0, qkv_bias=False), DIM)
    check_contract(SparseScanAttention(DIM, HEADS, kernel_size=3, layer_id=1), DIM)


def test_bf16_autocast_stays_close_to_float32():
    mixer = randomize_(SparseScanAttention(32, 4, kernel_size=3), 0.1)
    x = torch.randn(2, 63, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x, (7, 9))
    reference = mixer(x, (7, 9))
    assert (low.float() - reference).norm() / reference.norm() < 3e-2


def test_init_follows_the_official_code():
    mixer = SparseScanAttention(64, 4)
    assert mixer.qkv.bias.abs().sum() == 0 and mixer.proj.bias.abs().sum() == 0
    assert mixer.lepe.conv.bias.abs().sum() == 0
    for weight in (mixer.qkv.weight, mixer.lepe.conv.weight):
        assert 0.015 < weight.std() < 0.025


def test_extra_tokens_are_rejected_with_a_pointer_to_adaln():
    with pytest.raises(ValueError, match="sparse_scan_attention needs exactly H\\*W.*'adaln_zero' or 'adaln'"):
        SparseScanAttention(DIM, HEADS)(torch.randn(1, 2 + 12, DIM), (3, 4))


@pytest.mark.parametrize("options, message", [(dict(kernel_size=4), "odd integer >= 3"), (dict(kernel_size=1), "odd"),
                                              (dict(dilation=0), "dilation must be None"),
                                              (dict(schedule="paper"), "'fixed', 'official'"),
                                              (dict(lepe_kernel_size=2), "odd positive")])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        SparseScanAttention(DIM, HEADS, **options)
    with pytest.raises(ValueError, match="even and >= 4"):
        SparseScanAttention(12, 4)


def test_trains():
    assert_trains(dict(type="sparse_scan_attention", kernel_size=3))
