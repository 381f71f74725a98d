import math

import pytest
import torch

from visionmix.layers.rope import RoPE2d, apply_rope_2d, rope_2d_tables


def pair_angles(row: int, col: int, head_dim: int) -> list[float]:
    """Closed form: pair m < d/4 turns by row · θ_m, pair d/4 + m by col · θ_m, θ_m = 10000^(-m / (d/4 - 1))."""
    per_axis = head_dim // 4
    theta = [10000.0 ** (-m / (per_axis - 1)) if per_axis > 1 else 1.0 for m in range(per_axis)]
    angles = [row * t for t in theta] + [col * t for t in theta]
    return angles + [0.0] * (head_dim // 2 - len(angles))


def rotation_matrix(row: int, col: int, head_dim: int) -> torch.Tensor:
    """Block-diagonal d×d rotation acting on interleaved pairs (2m, 2m+1)."""
    rot = torch.zeros(head_dim, head_dim, dtype=torch.float64)
    for m, phi in enumerate(pair_angles(row, col, head_dim)):
        c, s = math.cos(phi), math.sin(phi)
        rot[2 * m:2 * m + 2, 2 * m:2 * m + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return rot


@pytest.mark.parametrize("hw,head_dim", [((5, 7), 8), ((3, 9), 16), ((4, 4), 6)])
def test_matches_the_closed_form_rotation(hw, head_dim):
    h, w = hw
    x = torch.randn(2, 3, h * w, head_dim, dtype=torch.float64)
    expected = torch.stack([x[..., n, :] @ rotation_matrix(n // w, n % w, head_dim).T for n in range(h * w)], dim=-2)
    torch.testing.assert_close(RoPE2d(head_dim)(x, hw), expected, rtol=1e-12, atol=1e-12)


def test_rotation_preserves_norms():
    x = torch.randn(2, 4, 35, 16, dtype=torch.float64)
    torch.testing.assert_close(RoPE2d(16)(x, (5, 7)).norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("head_dim", [8, 16, 6])
def test_scores_depend_only_on_the_relative_offset(head_dim):
    """<R_n q, R_m k> equals the closed form q^T R(φ(m) - φ(n)) k, a function of (Δrow, Δcol) alone."""
    h, w = 6, 5
    rope = RoPE2d(head_dim)
    q, k = torch.randn(head_dim, dtype=torch.float64), torch.randn(head_dim, dtype=torch.float64)
    scores = rope(q.expand(h * w, head_dim), (h, w)) @ rope(k.expand(h * w, head_dim), (h, w)).T
    for n in range(h * w):
        for m in range(h * w):
            d_row, d_col = m // w - n // w, m % w - n % w
            closed = sum(math.cos(phi) * (q[2 * j] * k[2 * j] + q[2 * j + 1] * k[2 * j + 1])
                         + math.sin(phi) * (q[2 * j + 1] * k[2 * j] - q[2 * j] * k[2 * j + 1])
                         for j, phi in enumerate(pair_angles(d_row, d_col, head_dim)))
            assert scores[n, m].item() == pytest.approx(float(closed), abs=1e-10)
    # the same offset anywhere on the grid gives the same score
    assert scores[0, w + 1].item() == pytest.approx(scores[2 * w + 2, 3 * w + 3].item(), abs=1e-12)


def test_first_half_follows_rows_second_half_columns():
    rope = RoPE2d(8)
    x = torch.randn(1, 8, dtype=torch.float64).expand(12, 8)
    out = rope(x, (3, 4)).view(3, 4, 8)
    torch.testing.assert_close(out[:, :, :4], out[:, :1, :4].expand(3, 4, 4))  # same row -> same first half
    torch.testing.assert_close(out[:, :, 4:], out[:1, :, 4:].expand(3, 4, 4))  # same column -> same second half
    torch.testing.assert_close(out[0, 0], x[0])  # origin: no rotation


def test_tables_are_cached_per_size_device_and_dtype():
    a = rope_2d_tables(5, 7, 8, torch.device("cpu"), torch.float32)
    assert rope_2d_tables(5, 7, 8, torch.device("cpu"), torch.float32) is a
    b = rope_2d_tables(5, 7, 8, torch.device("cpu"), torch.float64)
    assert b is not a and b[0].dtype == torch.float64 and a[0].shape == (35, 4)


def test_tables_built_under_inference_mode_serve_training():
    with torch.inference_mode():
        cos, sin = rope_2d_tables(3, 11, 8, torch.device("cpu"), torch.float32)
    x = torch.randn(2, 33, 8, requires_grad=True)
    apply_rope_2d(x, cos, sin).square().sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())  # orthogonal map: d‖Rx‖²/dx = 2x


@pytest.mark.parametrize("head_dim", [2, 7])
def test_head_width_must_hold_a_pair_per_axis(head_dim):
    with pytest.raises(ValueError, match="even and >= 4"):
        RoPE2d(head_dim)


def test_wrong_token_count_is_a_clear_error():
    with pytest.raises(ValueError, match="H\\*W = 12"):
        RoPE2d(8)(torch.randn(1, 13, 8), (3, 4))
