"""Gaussian KL and discretised decoder likelihood against torch.distributions (independent oracles)."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from visionmix.diffusion import approx_standard_normal_cdf, discretized_gaussian_log_likelihood, mean_flat, normal_kl


def test_kl_of_equal_gaussians_is_zero():
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(normal_kl(mean, logvar, mean, logvar), torch.zeros(4, 3))


def test_kl_matches_torch_distributions_and_broadcasts_scalars():
    m1, m2 = torch.randn(100, dtype=torch.float64), torch.randn(100, dtype=torch.float64)
    lv1, lv2 = torch.randn(100, dtype=torch.float64), torch.randn(100, dtype=torch.float64)
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected)
    # against the standard normal given as plain numbers (what a prior term does)
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(normal_kl(m1, lv1, 0.0, 0.0), expected)
    with pytest.raises(TypeError):
        normal_kl(0.0, 0.0, 1.0, 0.0)


def test_approx_cdf_is_close_to_the_exact_one():
    x = torch.linspace(-6, 6, 10001, dtype=torch.float64)
    assert (approx_standard_normal_cdf(x) - Normal(0.0, 1.0).cdf(x)).abs().max() < 2e-4


def _levels():
    return torch.arange(256, dtype=torch.float64) / 127.5 - 1.0


def test_decoder_probabilities_over_all_levels_sum_to_one():
    levels = _levels()[:, None].expand(256, 5)
    means = torch.tensor([-1.0, -0.3, 0.0, 0.7, 1.2], dtype=torch.float64).expand(256, 5)
    log_scales = torch.tensor([-4.0, -2.0, -1.0, 0.0, -3.0], dtype=torch.float64).expand(256, 5)
    logp = discretized_gaussian_log_likelihood(levels, means=means, log_scales=log_scales)
    torch.testing.assert_close(logp.exp().sum(0), torch.ones(5, dtype=torch.float64))


def test_decoder_interior_bin_is_the_gaussian_mass_of_the_bin():
    x = _levels()[100:110]
    means = torch.full_like(x, x[4].item() + 0.003)
    scale = 0.01
    logp = discretized_gaussian_log_likelihood(x, means=means, log_scales=torch.full_like(x, math.log(scale)))
    exact = Normal(means, scale)
    mass = exact.cdf(x + 1 / 255) - exact.cdf(x - 1 / 255)
    assert (logp.exp() - mass).abs().max() < 5e-4  # the tanh CDF approximation's error


def test_decoder_edge_levels_take_the_tails():
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    means = torch.tensor([-5.0, 5.0], dtype=torch.float64)  # far beyond the edges: almost all mass in the edge bin
    logp = discretized_gaussian_log_likelihood(x, means=means, log_scales=torch.zeros(2, dtype=torch.float64))
    assert torch.all(logp > math.log(0.99))


def test_mean_flat_averages_non_batch_dims():
    x = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(mean_flat(x), x.reshape(2, -1).mean(1))
