import math

import pytest
import torch
import torch.nn.functional as F

from tests.mixers.helpers import OnGrid, assert_matches_oracle, assert_trains, check_contract
from visionmix.flops import count_macs
from visionmix.layers import relative_position
from visionmix.mixers.window_attention import WindowAttention, set_window_size


def dense_window_attention(mixer: WindowAttention, x: torch.Tensor, hw: tuple[int, int], shifted: bool) -> torch.Tensor:
    """Dense N×N softmax attention over the real tokens only (no padding ever exists here), restricted by a
    same-window mask derived from coordinates, plus the bias read by the explicit offset formula."""
    h, w = hw
    m = mixer.window_size
    window = (min(m, h), min(m, w))  # a short side gets a whole-side window...
    shift = [win // 2 if shifted and side > m else 0 for side, win in zip(hw, window)]  # ...and no shift
    padded = [math.ceil(side / win) * win for side, win in zip(hw, window)]

    def window_and_region(r: int, c: int) -> tuple[int, ...]:
        """Window of (r, c) after rolling the padded grid by -shift, and Swin's shift region on each axis:
        0 = untouched windows, 1 = the last window's unwrapped part, 2 = the part that wrapped around."""
        key = []
        for p, s, win, size in ((r, shift[0], window[0], padded[0]), (c, shift[1], window[1], padded[1])):
            rolled = (p - s) % size
            region = 0 if rolled < size - win else (1 if rolled < size - s else 2)
            key += [rolled // win, region]
        return tuple(key)

    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)  # row-major token order
    keys = torch.tensor([window_and_region(r, c) for r, c in zip(rows.tolist(), cols.tolist())])
    allowed = (keys[:, None, :] == keys[None, :, :]).all(-1)
    d_row, d_col = rows[:, None] - rows[None, :], cols[:, None] - cols[None, :]
    bias = dense_bias(mixer, d_row.where(allowed, 0), d_col.where(allowed, 0))  # (N, N, heads)
    dim, d, qkv = x.shape[-1], mixer.head_dim, mixer.qkv(x)
    heads = []
    for head in range(mixer.num_heads):
        q, k, v = (qkv[..., part * dim + head * d: part * dim + (head + 1) * d] for part in range(3))
        if mixer.cosine:  # Swin-V2: cos(q, k) times exp(logit_scale) clamped at 100
            q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
            logits = q @ k.transpose(-1, -2) * torch.exp(mixer.logit_scale[head, 0, 0].clamp(max=math.log(100)))
        else:
            logits = q @ k.transpose(-1, -2) / math.sqrt(d)
        logits = (logits + bias[..., head]).masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(logits, dim=-1) @ v)
    return mixer.proj(torch.cat(heads, dim=-1))


def dense_bias(mixer: WindowAttention, d_row: torch.Tensor, d_col: torch.Tensor) -> torch.Tensor:
    """(..., heads) bias of query-minus-key offsets (Δr, Δc): V1's table row by the explicit offset formula, or
    Swin-V2's 16·sigmoid(MLP(log-spaced offsets)) with the MLP as F.linear calls, normalised by the built M₀."""
    m = mixer.built_window
    if mixer.position_bias == "table":
        return mixer.relative_position_bias_table[(d_row + m - 1) * (2 * m - 1) + (d_col + m - 1)]
    offsets, inverse = torch.unique(torch.stack([d_row, d_col], -1).reshape(-1, 2), dim=0, return_inverse=True)
    t = offsets.double() * 8 / (m - 1)
    coords = (torch.sign(t) * torch.log2(1 + t.abs()) / math.log2(8)).to(mixer.cpb_mlp[0].weight.dtype)
    first, second = mixer.cpb_mlp[0], mixer.cpb_mlp[2]
    per_offset = 16 * torch.sigmoid(F.linear(F.relu(F.linear(coords, first.weight, first.bias)), second.weight))
    return per_offset[inverse].view(*d_row.shape, -1)


def randomize_bias_(mixer: WindowAttention) -> WindowAttention:
    """Biases and logit scales big enough that a wrong coordinate, head or clamp shows in the output."""
    with torch.no_grad():
        if mixer.position_bias == "table":
            mixer.relative_position_bias_table.normal_(0, 1)
        else:
            for param, std in zip(mixer.cpb_mlp.parameters(), (1.0, 0.5, 0.15)):  # weight, bias; weight
                param.normal_(0, std)
        if mixer.cosine:  # one head past the clamp at log(100)
            mixer.logit_scale.copy_(torch.linspace(0.5, 5.5, mixer.num_heads).view(-1, 1, 1))
    return mixer


def check_against_oracle(mixer: WindowAttention, hw: tuple[int, int], shift: bool) -> None:
    x = torch.randn(2, hw[0] * hw[1], mixer.num_heads * mixer.head_dim, dtype=torch.float64, requires_grad=True)
    out, expected = mixer(x, hw), dense_window_attention(mixer, x, hw, shift)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-10, atol=1e-10, grad_rtol=1e-9, grad_atol=1e-10)

CASES = [((4, 4), 3, False), ((4, 4), 3, True), ((4, 4), 2, True), ((4, 4), 4, True), ((5, 7), 3, False),
         ((5, 7), 3, True), ((5, 7), 4, True), ((5, 7), 6, True), ((5, 7), 8, True), ((16, 16), 3, True),
         ((16, 16), 4, False), ((16, 16), 4, True), ((1, 1), 4, True), ((2, 9), 4, True)]
V2 = [dict(cosine=True), dict(position_bias="continuous"), dict(cosine=True, position_bias="continuous")]
V1_AND_V2 = pytest.mark.parametrize("options", [{}, V2[2]], ids=["v1", "v2"])
V2_CASES = [((4, 4), 3, True), ((5, 7), 4, True), ((5, 7), 8, False), ((16, 16), 4, True), ((2, 9), 4, True)]


@pytest.mark.parametrize("hw, window_size, shift, options",
                         [(*case, {}) for case in CASES] + [(*case, o) for case in V2_CASES for o in V2])
def test_outputs_and_gradients_match_the_dense_oracle(hw, window_size, shift, options):
    """V1 (the table), and Swin-V2's cosine logits and continuous bias, alone and together."""
    mixer = randomize_bias_(WindowAttention(12, 3, window_size=window_size, shift=shift, **options).double())
    check_against_oracle(mixer, hw, shift)


@pytest.mark.parametrize("new_window, hw", [(4, (16, 16)), (12, (16, 16)), (3, (5, 7)), (12, (5, 7))])
def test_continuous_bias_runs_with_another_window_at_inference(new_window, hw):
    """Built (trained) with M₀ = 8, run with another M: the oracle normalises by M₀ and windows by M."""
    mixer = randomize_bias_(WindowAttention(12, 3, window_size=8, shift=True, **V2[2]).double())
    mixer.window_size = new_window  # M₀ = built_window stays 8
    check_against_oracle(mixer, hw, True)


def test_continuous_bias_of_shared_offsets_does_not_depend_on_the_window():
    mixer = randomize_bias_(WindowAttention(8, 2, window_size=8, position_bias="continuous"))
    big = mixer.relative_bias((12, 12), torch.device("cpu"))
    for window in [(4, 4), (8, 8), (3, 7), (12, 12)]:
        small = mixer.relative_bias(window, torch.device("cpu"))
        inside = torch.tensor([r * 12 + c for r in range(window[0]) for c in range(window[1])])  # same positions
        torch.testing.assert_close(small, big[:, inside][:, :, inside], rtol=1e-6, atol=1e-6)


def test_window_change_needs_the_continuous_bias_and_set_window_size_is_all_or_nothing():
    table = WindowAttention(8, 2, window_size=4)
    table.window_size = 4  # the built window is fine
    with pytest.raises(ValueError, match="window_size must be a positive integer"):
        WindowAttention(8, 2, position_bias="continuous").window_size = 0
    with pytest.raises(ValueError, match="window_size can change only with position_bias='continuous'"):
        table.window_size = 8
    continuous = [WindowAttention(8, 2, window_size=4, position_bias="continuous", layer_id=i) for i in range(3)]
    assert set_window_size(torch.nn.ModuleList(continuous), 6) == 3
    assert all(m.window_size == 6 and m(torch.randn(1, 144, 8), (12, 12)).shape == (1, 144, 8) for m in continuous)
    with pytest.raises(ValueError, match="only with position_bias='continuous'"):
        set_window_size(torch.nn.ModuleList([*continuous, table]), 8)
    assert [m.window_size for m in [*continuous, table]] == [6, 6, 6, 4]


def test_defaults_stay_swin_v1():
    mixer = WindowAttention(16, 4, window_size=8)
    assert not mixer.cosine and mixer.position_bias == "table" and "cosine" not in repr(mixer)
    assert list(mixer.state_dict()) == ["relative_position_bias_table", "qkv.weight", "qkv.bias", "proj.weight",
                                        "proj.bias"]
    assert sum(p.numel() for p in mixer.parameters()) == 16 * 48 + 48 + 15 * 15 * 4 + 16 * 16 + 16
    v2 = WindowAttention(16, 4, window_size=8, **V2[2])
    assert list(v2.state_dict()) == ["logit_scale", "qkv.weight", "qkv.bias", "cpb_mlp.0.weight", "cpb_mlp.0.bias",
                                     "cpb_mlp.2.weight", "proj.weight", "proj.bias"]  # Swin-V2's names


def test_shift_alternates_with_depth_unless_forced():
    assert [WindowAttention(8, 2, layer_id=i).shifted for i in range(4)] == [False, True, False, True]
    assert WindowAttention(8, 2, shift=True, layer_id=0).shifted
    assert not WindowAttention(8, 2, shift=False, layer_id=1).shifted
    x = torch.randn(1, 64, 8)
    shifted, plain = WindowAttention(8, 2, window_size=4, shift=True), WindowAttention(8, 2, window_size=4, shift=False)
    plain.load_state_dict(shifted.state_dict())
    assert not torch.allclose(shifted(x, (8, 8)), plain(x, (8, 8)))


@pytest.mark.parametrize("position_bias", ["table", "continuous"])
def test_masks_index_and_coordinates_are_cached_not_rebuilt_per_forward(position_bias):
    mixer = WindowAttention(8, 2, window_size=3, shift=True, position_bias=position_bias)
    x = torch.randn(1, 35, 8)
    mixer(x, (5, 7))
    cached = [relative_position.relative_position_index, relative_position.shifted_window_mask,
              relative_position.log_relative_coords]  # grid_cache'd
    misses = [fn.cache_info().misses for fn in cached]
    mixer(x, (5, 7))
    assert [fn.cache_info().misses for fn in cached] == misses


def test_contract():
    check_contract(WindowAttention(16, 2, window_size=4, shift=True), 16)
    check_contract(WindowAttention(16, 2, window_size=3, shift=False), 16)
    check_contract(WindowAttention(16, 2, window_size=4, shift=True, **V2[2]), 16)


@V1_AND_V2
def test_bf16_autocast_tracks_fp32(options):
    mixer = WindowAttention(32, 4, window_size=4, shift=True, **options)
    x = torch.randn(2, 63, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x, (7, 9))
    torch.testing.assert_close(low.float(), mixer(x, (7, 9)), rtol=0.05, atol=0.02)


@V1_AND_V2
def test_init_weights_sets_every_parameter(options):
    mixer = WindowAttention(16, 4, window_size=3, **options)
    with torch.no_grad():
        for p in mixer.parameters():
            p.fill_(float("nan"))
    mixer.init_weights()
    assert all(torch.isfinite(p).all() for p in mixer.parameters())
    assert (mixer.qkv.bias == 0).all() and (mixer.proj.bias == 0).all()
    if not options:
        table = mixer.relative_position_bias_table
        assert table.shape == (25, 4) and 0.01 < table.std() < 0.03  # timm's trunc_normal_(std=.02), as Swin
    else:  # Swin-V2: tau = 10 at init, the bias MLP's Linears trunc-normal(.02) by the model-wide init
        assert torch.equal(mixer.logit_scale, torch.full((4, 1, 1), math.log(10.0)))
        first, second = mixer.cpb_mlp[0], mixer.cpb_mlp[2]
        assert 0.01 < first.weight.std() < 0.03 and 0.01 < second.weight.std() < 0.03 and (first.bias == 0).all()


def test_no_qkv_bias():
    assert WindowAttention(8, 2, qkv_bias=False).qkv.bias is None


def test_extra_tokens_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="window_attention.*adaln_zero' or 'adaln'"):
        WindowAttention(8, 2)(torch.randn(1, 2 + 12, 8), (3, 4))


@pytest.mark.parametrize("options, match", [
    (dict(window_size=0), "window_size must be a positive integer"), (dict(window_size=-2), "positive integer"),
    (dict(dim=30, num_heads=4), "not divisible by num_heads"), (dict(position_bias="learned"), "must be one of")])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        WindowAttention(**{"dim": 8, "num_heads": 2, **options})


def test_flop_counter_sees_the_attention_and_cost_is_linear_in_tokens():
    dim, heads, m = 16, 2, 8
    mixer = WindowAttention(dim, heads, window_size=m, shift=True)
    counts = {}
    for side in (32, 64):
        n = side * side
        counts[side] = count_macs(OnGrid(mixer, (side, side)), (torch.randn(1, n, dim),))
        windows = n // (m * m)
        attention = windows * heads * (m * m) ** 2 * 2 * (dim // heads)  # QK^T and AV per window
        assert counts[side] == n * dim * 3 * dim + n * dim * dim + attention
    assert counts[64] == 4 * counts[32]
    v2 = WindowAttention(dim, heads, window_size=m, shift=True, **V2[2])
    mlp = (2 * m - 1) ** 2 * (2 * 512 + 512 * heads)  # one bias-MLP pass over the offsets, shared by the windows
    assert count_macs(OnGrid(v2, (32, 32)), (torch.randn(1, 1024, dim),)) == counts[32] + mlp


@V1_AND_V2
def test_trains_on_digits(options):
    assert_trains(dict(type="window_attention", window_size=2, **options))
