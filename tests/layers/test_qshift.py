import pytest
import torch

from visionmix.layers.qshift import q_shift


def q_shift_loops(x, hw, s, gamma):
    """Per-pixel definition: group 0 reads (i, j-s), 1 reads (i, j+s), 2 reads (i-s, j), 3 reads (i+s, j)."""
    b, n, c = x.shape
    h, w = hw
    g = int(c * gamma)
    grid = x.view(b, h, w, c)
    out = torch.zeros_like(grid)
    offsets = [(0, -s), (0, s), (-s, 0), (s, 0)]
    for i in range(h):
        for j in range(w):
            for q, (di, dj) in enumerate(offsets):
                si, sj = i + di, j + dj
                if 0 <= si < h and 0 <= sj < w:
                    out[:, i, j, q * g:(q + 1) * g] = grid[:, si, sj, q * g:(q + 1) * g]
            out[:, i, j, 4 * g:] = grid[:, i, j, 4 * g:]
    return out.view(b, n, c)


@pytest.mark.parametrize("hw,c,s,gamma", [((4, 4), 8, 1, 0.25), ((5, 7), 12, 1, 0.25), ((3, 6), 10, 2, 0.2),
                                         ((1, 5), 8, 1, 0.25)])
def test_q_shift_matches_the_per_pixel_definition(hw, c, s, gamma):
    x = torch.randn(2, hw[0] * hw[1], c)
    torch.testing.assert_close(q_shift(x, hw, s, gamma), q_shift_loops(x, hw, s, gamma))


def test_gamma_above_a_quarter_is_rejected():
    with pytest.raises(ValueError, match="gamma"):
        q_shift(torch.randn(1, 4, 8), (2, 2), 1, 0.3)


def test_a_token_count_other_than_h_times_w_is_rejected():
    with pytest.raises(ValueError, match="4\\*4 = 16 tokens, got 15"):
        q_shift(torch.zeros(1, 15, 8), (4, 4))
