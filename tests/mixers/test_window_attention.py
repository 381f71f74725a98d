import math

import pytest
import torch

from tests.mixers.helpers import assert_trains, check_contract
from visionmix.flops import count_macs
from visionmix.layers import relative_position
from visionmix.mixers.window_attention import WindowAttention


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
    table_rows = (d_row + m - 1) * (2 * m - 1) + (d_col + m - 1)
    # pairs in different windows read row 0: their logit is masked anyway (and their offset may exceed M - 1)
    table_rows = table_rows.where(allowed, 0)
    dim, d = x.shape[-1], mixer.head_dim
    qkv = mixer.qkv(x)
    heads = []
    for head in range(mixer.num_heads):
        q, k, v = (qkv[..., part * dim + head * d: part * dim + (head + 1) * d] for part in range(3))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d) + mixer.relative_position_bias_table[table_rows, head]
        logits = logits.masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(logits, dim=-1) @ v)
    return mixer.proj(torch.cat(heads, dim=-1))


CASES = [((4, 4), 3, False), ((4, 4), 3, True), ((4, 4), 2, True), ((4, 4), 4, True), ((5, 7), 3, False),
         ((5, 7), 3, True), ((5, 7), 4, True), ((5, 7), 6, True), ((5, 7), 8, True), ((16, 16), 3, True),
         ((16, 16), 4, False), ((16, 16), 4, True), ((1, 1), 4, True), ((2, 9), 4, True)]


@pytest.mark.parametrize("hw, window_size, shift", CASES)
def test_outputs_and_gradients_match_the_dense_oracle(hw, window_size, shift):
    mixer = WindowAttention(12, 3, window_size=window_size, shift=shift).double()
    with torch.no_grad():  # a bias big enough that a wrong table row shows
        mixer.relative_position_bias_table.normal_(0, 1)
    x = torch.randn(2, hw[0] * hw[1], 12, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, hw[0] * hw[1], 12, dtype=torch.float64)
    params = [x, *mixer.parameters()]
    out = mixer(x, hw)
    expected = dense_window_attention(mixer, x, hw, shift)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad((out * weights).sum(), params)
    expected_grads = torch.autograd.grad((expected * weights).sum(), params)
    for name, got, want in zip(["x", *(n for n, _ in mixer.named_parameters())], grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10, msg=lambda msg: f"{name}: {msg}")


def test_shift_alternates_with_depth_unless_forced():
    assert [WindowAttention(8, 2, layer_id=i).shifted for i in range(4)] == [False, True, False, True]
    assert WindowAttention(8, 2, shift=True, layer_id=0).shifted
    assert not WindowAttention(8, 2, shift=False, layer_id=1).shifted
    x = torch.randn(1, 64, 8)
    shifted, plain = WindowAttention(8, 2, window_size=4, shift=True), WindowAttention(8, 2, window_size=4, shift=False)
    plain.load_state_dict(shifted.state_dict())
    assert not torch.allclose(shifted(x, (8, 8)), plain(x, (8, 8)))


def test_masks_and_index_are_cached_not_rebuilt_per_forward():
    mixer = WindowAttention(8, 2, window_size=3, shift=True)
    x = torch.randn(1, 35, 8)
    mixer(x, (5, 7))
    index_misses = relative_position.relative_position_index.cache_info().misses
    mask_misses = relative_position.shifted_window_mask.cache_info().misses
    mixer(x, (5, 7))
    assert relative_position.relative_position_index.cache_info().misses == index_misses
    assert relative_position.shifted_window_mask.cache_info().misses == mask_misses


def test_contract():
    check_contract(WindowAttention(16, 2, window_size=4, shift=True), 16)
    check_contract(WindowAttention(16, 2, window_size=3, shift=False), 16)


def test_bf16_autocast_tracks_fp32():
    mixer = WindowAttention(32, 4, window_size=4, shift=True)
    x = torch.randn(2, 63, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x, (7, 9))
    torch.testing.assert_close(low.float(), mixer(x, (7, 9)), rtol=0.05, atol=0.02)


def test_init_weights_sets_every_parameter():
    mixer = WindowAttention(16, 4, window_size=3)
    with torch.no_grad():
        for p in mixer.parameters():
            p.fill_(float("nan"))
    mixer.init_weights()
    assert all(torch.isfinite(p).all() for p in mixer.parameters())
    table = mixer.relative_position_bias_table
    assert table.shape == (25, 4) and 0.01 < table.std() < 0.03  # timm's trunc_normal_(std=.02), as Swin
    assert (mixer.qkv.bias == 0).all() and (mixer.proj.bias == 0).all()


def test_no_qkv_bias():
    assert WindowAttention(8, 2, qkv_bias=False).qkv.bias is None


def test_extra_tokens_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="window_attention.*adaln_zero' or 'adaln'"):
        WindowAttention(8, 2)(torch.randn(1, 2 + 12, 8), (3, 4))


@pytest.mark.parametrize("window_size", [0, -2])
def test_bad_window_size_is_a_clear_error(window_size):
    with pytest.raises(ValueError, match="window_size must be a positive integer"):
        WindowAttention(8, 2, window_size=window_size)


def test_width_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        WindowAttention(30, 4)


class _OnGrid(torch.nn.Module):
    """Holds the grid size so that fvcore's tracer sees a tensor-only call."""

    def __init__(self, mixer: torch.nn.Module, hw: tuple[int, int]):
        super().__init__()
        self.mixer, self.hw = mixer, hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, self.hw)


def test_flop_counter_sees_the_attention_and_cost_is_linear_in_tokens():
    dim, heads, m = 16, 2, 8
    mixer = WindowAttention(dim, heads, window_size=m, shift=True)
    counts = {}
    for side in (32, 64):
        n = side * side
        counts[side] = count_macs(_OnGrid(mixer, (side, side)), (torch.randn(1, n, dim),))
        windows = n // (m * m)
        attention = windows * heads * (m * m) ** 2 * 2 * (dim // heads)  # QK^T and AV per window
        assert counts[side] == n * dim * 3 * dim + n * dim * dim + attention
    assert counts[64] == 4 * counts[32]


def test_trains_on_digits():
    assert_trains(dict(type="window_attention", window_size=2))
