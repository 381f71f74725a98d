import pytest
import torch

from visionmix.layers import neighborhood
from visionmix.layers.neighborhood import (axis_neighbors, axis_window, neighborhood_attention,
                                           neighborhood_index)


def natten_window_start(i: int, n: int, k: int, d: int) -> int:
    """NATTEN's get_window_start, case by case as its C++ writes it (kernel k, dilation d, k·d <= n)."""
    ns = k // 2
    if d <= 1:
        return max(i - ns, 0) + (i + ns >= n) * (n - i - ns - 1)
    if i - ns * d < 0:
        return i % d
    if i + ns * d >= n:
        a = (n // d) * d
        b = n - a
        return n - b + i % d - 2 * ns * d if i % d < b else a + i % d - k * d
    return i - ns * d


@pytest.mark.parametrize("n, k, d", [(7, 3, 1), (7, 3, 2), (16, 5, 3), (16, 3, 5), (9, 3, 3), (13, 7, 1), (35, 5, 7)])
def test_axis_windows_follow_natten(n, k, d):
    got = axis_neighbors(n, k, d)
    want = torch.tensor([[natten_window_start(i, n, k, d) + d * t for t in range(k)] for i in range(n)])
    assert torch.equal(got, want)
    assert all((row % d == i % d).all() for i, row in enumerate(got))  # same dilation group as the query


@pytest.mark.parametrize("n, k, d, window", [(4, 5, 1, (4, 1)), (4, 3, 2, (3, 1)), (10, 3, 4, (3, 3)),
                                             (1, 7, 3, (1, 1)), (12, 5, 9, (5, 2))])
def test_short_axes_are_clamped(n, k, d, window):
    assert axis_window(n, k, d) == window
    rows = axis_neighbors(n, k, d)
    assert rows.shape == (n, window[0]) and rows.min() >= 0 and rows.max() < n
    assert all(len(set(r.tolist())) == window[0] for r in rows)


@pytest.mark.parametrize("hw, k, d", [((5, 7), 3, 1), ((16, 16), 5, 2), ((9, 4), 3, 3), ((2, 3), 5, 1)])
def test_every_query_sees_exactly_its_window(hw, k, d):
    h, w = hw
    index = neighborhood_index(h, w, k, d, torch.device("cpu"))
    kh, kw = axis_window(h, k, d)[0], axis_window(w, k, d)[0]
    assert index.shape == (h * w, kh * kw)
    assert all(len(set(row.tolist())) == kh * kw for row in index)
    assert neighborhood_index(h, w, k, d, torch.device("cpu")) is index  # cached


def test_attention_matches_dense_masked_softmax():
    h, w, k, d = 6, 5, 3, 2
    q, key, v = (torch.randn(2, 3, h * w, 4, dtype=torch.float64) for _ in range(3))
    index = neighborhood_index(h, w, k, d, torch.device("cpu"))
    allowed = torch.zeros(h * w, h * w, dtype=torch.bool)
    allowed[torch.arange(h * w)[:, None], index] = True
    logits = (q @ key.transpose(-1, -2) / 2.0).masked_fill(~allowed, float("-inf"))
    torch.testing.assert_close(neighborhood_attention(q, key, v, index), torch.softmax(logits, -1) @ v)


@pytest.mark.parametrize("gather_elements", [1 << 22, 40])  # one chunk; chunks of a query or two
def test_gradients_match_the_dense_masked_softmax_in_any_chunking(gather_elements, monkeypatch):
    monkeypatch.setattr(neighborhood, "GATHER_ELEMENTS", gather_elements)
    h, w, k, d = 5, 7, 3, 2
    inputs = [torch.randn(2, 2, h * w, 4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    index = neighborhood_index(h, w, k, d, torch.device("cpu"))
    allowed = torch.zeros(h * w, h * w, dtype=torch.bool)
    allowed[torch.arange(h * w)[:, None], index] = True

    def dense(q, key, v):
        return torch.softmax((q @ key.transpose(-1, -2) * 0.3).masked_fill(~allowed, float("-inf")), -1) @ v

    grad_out = torch.randn(2, 2, h * w, 4, dtype=torch.float64)
    got = torch.autograd.grad(neighborhood_attention(*inputs, index, scale=0.3), inputs, grad_out)
    want = torch.autograd.grad(dense(*inputs), inputs, grad_out)
    for g, expected in zip(got, want):
        torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-12)


def test_backward_keeps_no_gathered_keys():
    # saved for backward: q, k, v, the index and the (B, heads, N, K) weights; never (B, heads, N, K, d)
    q, key, v = (torch.randn(1, 2, 64, 8, requires_grad=True) for _ in range(3))
    out = neighborhood_attention(q, key, v, neighborhood_index(8, 8, 5, 1, torch.device("cpu")))
    saved = [t.numel() for t in out.grad_fn.saved_tensors]
    assert max(saved) <= 2 * 64 * 25 and out.shape == (1, 2, 64, 8)


def test_meta_device_builds_the_index():
    assert neighborhood_index(8, 8, 3, 2, torch.device("meta")).shape == (64, 9)
