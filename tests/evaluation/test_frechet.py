import numpy as np
import pytest

from visionmix.evaluation import frechet_distance, gaussian_stats


def _random_spd(d, rng, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T + (0 if rank else 0.1) * np.eye(d)


def _closed_form_commuting(mu1, a, mu2, b):
    """Covariances Q diag(a) Q^T and Q diag(b) Q^T: tr sqrt(S1 S2) = sum sqrt(a b)."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), _random_spd(16, rng)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
        _closed_form_commuting(mu1, a, mu2, b), rel=1e-10)


def test_commuting_covariances_match_closed_form():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(_closed_form_commuting(mu1, a, mu2, b), rel=1e-9)


def test_one_dimensional_case():
    # N(0, 4) vs N(1, 1): 1 + (2 - 1)^2 = 2
    assert frechet_distance(np.zeros(1), np.array([[4.0]]), np.ones(1), np.array([[1.0]])) == pytest.approx(2.0)


def test_general_covariances_match_scipy_sqrtm_and_are_symmetric():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    s1, s2 = _random_spd(10, rng), _random_spd(10, rng)
    covmean = linalg.sqrtm(s1 @ s2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(reference, rel=1e-8)


def test_singular_covariances_stay_finite_and_exact():
    # rank-deficient (fewer samples than dims, dead features): a zero variance direction in both
    a, b = np.array([2.0, 0.0, 1.0]), np.array([0.5, 0.0, 0.0])
    got = frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b))
    assert got == pytest.approx(_closed_form_commuting(np.zeros(3), a, np.zeros(3), b), rel=1e-12)
    rng = np.random.default_rng(4)
    low = _random_spd(20, rng, rank=3)
    value = frechet_distance(np.zeros(20), low, np.zeros(20), low)
    assert np.isfinite(value) and value == pytest.approx(0.0, abs=1e-8)


def test_gaussian_stats_and_argument_checks():
    x = np.random.default_rng(5).standard_normal((50, 3))
    mu, sigma = gaussian_stats(x)
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x.T))
    assert gaussian_stats(x[:, :1])[1].shape == (1, 1)
    with pytest.raises(ValueError):
        gaussian_stats(x[:1])
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(mu, sigma, mu[:2], sigma)
