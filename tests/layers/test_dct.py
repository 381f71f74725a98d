import math

import pytest
import torch

from visionmix.layers.dct import dct_2d, dct_matrix, idct_2d, radial_bands

CPU = torch.device("cpu")
SIZES = [(1, 1), (4, 4), (5, 7), (16, 16), (3, 9)]


def cosine_sum_dct(x: torch.Tensor) -> torch.Tensor:
    """X̂[u, v] = α_u α_v Σ_h Σ_w x[h, w] cos(π(2h+1)u / 2H) cos(π(2w+1)v / 2W), one coefficient at a time."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    alpha = lambda k, n: math.sqrt((1 if k == 0 else 2) / n)  # noqa: E731
    for u in range(h):
        for v in range(w):
            cosines = torch.cos(math.pi * (2 * i + 1) * u / (2 * h)) * torch.cos(math.pi * (2 * j + 1) * v / (2 * w))
            out[..., u, v] = alpha(u, h) * alpha(v, w) * (x * cosines).sum(dim=(-2, -1))
    return out


@pytest.mark.parametrize("hw", SIZES)
def test_dct_matches_the_cosine_sum(hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    torch.testing.assert_close(dct_2d(x), cosine_sum_dct(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 16, 17])
def test_matrix_is_orthonormal(n):
    d = dct_matrix(n, CPU, torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-13)
    torch.testing.assert_close(d.T @ d, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-13)


@pytest.mark.parametrize("hw", SIZES)
def test_round_trip_and_energy(hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    spectrum = dct_2d(x)
    torch.testing.assert_close(idct_2d(spectrum), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dct_2d(idct_2d(x)), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(spectrum.square().sum(), x.square().sum())  # Parseval: orthonormal


def test_constant_grid_has_only_the_dc_coefficient():
    spectrum = dct_2d(torch.full((5, 7), 2.0, dtype=torch.float64))
    assert spectrum[0, 0].item() == pytest.approx(2.0 * math.sqrt(35))
    spectrum[0, 0] = 0
    assert spectrum.abs().max() < 1e-12


def test_matrices_are_cached_per_size_device_and_dtype():
    assert dct_matrix(6, CPU, torch.float32) is dct_matrix(6, CPU, torch.float32)
    assert dct_matrix(6, CPU, torch.float32) is not dct_matrix(6, CPU, torch.float64)
    assert dct_matrix(6, CPU, torch.float32).dtype == torch.float32


def test_tables_built_under_inference_mode_serve_autograd():
    with torch.inference_mode():
        dct_2d(torch.randn(1, 11, 13))  # sizes no other test uses: the matrices are built here
    x = torch.randn(1, 11, 13, requires_grad=True)
    idct_2d(dct_2d(x)).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x), rtol=1e-5, atol=1e-5)


def test_bands_of_a_4x4_grid():
    # radius sqrt((u/4)^2 + (v/4)^2) in quarters of [0, 1): 0 .. 0.25 -> 0, .. 0.5 -> 1, .. 0.75 -> 2, else 3
    expected = torch.tensor([[0, 1, 2, 3],
                             [1, 1, 2, 3],
                             [2, 2, 2, 3],
                             [3, 3, 3, 3]])
    assert torch.equal(radial_bands(4, 4, 4, CPU), expected)


@pytest.mark.parametrize("hw, bands", [((5, 7), 3), ((16, 16), 4), ((1, 1), 2), ((3, 9), 5)])
def test_bands_follow_the_normalised_radius(hw, bands):
    h, w = hw
    got = radial_bands(h, w, bands, CPU)
    for u in range(h):
        for v in range(w):
            radius = math.hypot(u / h, v / w)
            assert got[u, v] == min(int(radius * bands + 1e-9), bands - 1), (u, v)
    assert got.dtype == torch.long and got[0, 0] == 0


def test_bad_sizes_are_errors():
    with pytest.raises(ValueError, match="num_bands must be positive"):
        radial_bands(4, 4, 0, CPU)
    with pytest.raises(ValueError, match="DCT length must be positive"):
        dct_matrix(0, CPU, torch.float32)
