import math

import pytest
import torch

from visionmix.layers.decay import axial_decay, manhattan_decay, retention_log_gammas

CPU = torch.device("cpu")


def test_gamma_per_head_follows_rmt_formula():
    # RMT: decay_h = log(1 - 2^(-initial_value - heads_range * h / num_heads))
    for heads, a, b in [(4, 2.0, 4.0), (8, 2.0, 6.0), (1, 1.0, 3.0), (5, 2.0, 5.0)]:
        got = retention_log_gammas(heads, a, b)
        assert len(got) == heads
        for h, log_gamma in enumerate(got):
            assert math.exp(log_gamma) == pytest.approx(1 - 2 ** (-a - b * h / heads), rel=1e-12)
    assert [math.exp(g) for g in retention_log_gammas(4, 2.0, 4.0)] == pytest.approx([0.75, 0.875, 0.9375, 0.96875])


def test_first_head_decays_fastest():
    log_gammas = retention_log_gammas(6)
    assert all(g < 0 for g in log_gammas)
    assert list(log_gammas) == sorted(log_gammas)


@pytest.mark.parametrize("hw", [(1, 1), (3, 4), (5, 2), (1, 6)])
def test_manhattan_entries_equal_the_closed_form(hw):
    h, w = hw
    log_gammas = retention_log_gammas(3, 2.0, 4.0)
    mask = manhattan_decay(h, w, log_gammas, CPU, torch.float64)
    assert mask.shape == (3, h * w, h * w) and mask.dtype == torch.float64
    for head, log_gamma in enumerate(log_gammas):
        for n in range(h * w):
            for m in range(h * w):
                (rn, cn), (rm, cm) = divmod(n, w), divmod(m, w)
                assert mask[head, n, m].item() == pytest.approx((abs(rn - rm) + abs(cn - cm)) * log_gamma, abs=1e-12)


@pytest.mark.parametrize("length", [1, 2, 7])
def test_axial_entries_equal_the_closed_form(length):
    log_gammas = retention_log_gammas(4)
    mask = axial_decay(length, log_gammas, CPU, torch.float32)
    assert mask.shape == (4, length, length) and mask.dtype == torch.float32
    expected = torch.tensor([[[abs(i - j) * g for j in range(length)] for i in range(length)] for g in log_gammas])
    torch.testing.assert_close(mask, expected)


def test_manhattan_mask_is_the_sum_of_the_axial_ones():
    h, w, log_gammas = 4, 6, retention_log_gammas(2)
    rows, cols = axial_decay(h, log_gammas, CPU, torch.float64), axial_decay(w, log_gammas, CPU, torch.float64)
    combined = rows[:, :, None, :, None] + cols[:, None, :, None, :]  # (heads, r, c, r', c')
    torch.testing.assert_close(manhattan_decay(h, w, log_gammas, CPU, torch.float64), combined.reshape(2, h * w, h * w))


def test_masks_are_cached_per_key():
    log_gammas = retention_log_gammas(2)
    mask = manhattan_decay(3, 5, log_gammas, CPU, torch.float32)
    assert manhattan_decay(3, 5, log_gammas, CPU, torch.float32) is mask
    assert manhattan_decay(5, 3, log_gammas, CPU, torch.float32) is not mask
    assert axial_decay(5, log_gammas, CPU, torch.float32) is not axial_decay(5, log_gammas, CPU, torch.float64)


def test_a_mask_first_built_under_inference_mode_serves_training_later():
    log_gammas = retention_log_gammas(2, 1.5, 3.5)  # a key no other test uses: built here, inside inference mode
    with torch.inference_mode():
        manhattan_decay(2, 3, log_gammas, CPU, torch.float32)
    mask = manhattan_decay(2, 3, log_gammas, CPU, torch.float32)
    assert not mask.is_inference()
    q = torch.randn(1, 2, 6, 4, requires_grad=True)
    torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask).sum().backward()
    assert q.grad is not None
