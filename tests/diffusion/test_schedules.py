"""visionmix.diffusion.schedules: each schedule against its paper's closed form (or the reference library)."""
import math

import numpy as np
import pytest

from tests.diffusion.test_gaussian import abar_oracle
from visionmix.diffusion.gaussian import GaussianDiffusion
from visionmix.diffusion.schedules import cosine_betas, linear_betas, make_betas


def test_linear_schedule_follows_the_1000_over_T_rule():
    b = linear_betas(1000)
    assert b.dtype == np.float64 and len(b) == 1000
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    b = linear_betas(4000)
    assert b[0] == pytest.approx(2.5e-5) and b[-1] == pytest.approx(0.005)
    np.testing.assert_allclose(GaussianDiffusion().alphas_cumprod, abar_oracle(), rtol=1e-12)


def test_cosine_schedule_reproduces_its_alpha_bar():
    T = 100
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    abar = np.cumprod(1 - cosine_betas(T))
    expected = np.array([f((i + 1) / T) / f(0) for i in range(T)])
    np.testing.assert_allclose(abar[:-1], expected[:-1], rtol=1e-10)  # the last beta is capped at 0.999
    assert cosine_betas(T).max() <= 0.999
    assert GaussianDiffusion(num_timesteps=T, noise_schedule="cosine").num_timesteps == T
    with pytest.raises(ValueError, match="unknown noise schedule"):
        GaussianDiffusion(noise_schedule="quadratic")


def test_scaled_linear_schedule_is_stable_diffusions():
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear")
    np.testing.assert_allclose(make_betas("scaled_linear", 1000), scheduler.betas.double().numpy(), rtol=1e-6)
    b = make_betas("scaled_linear", 1000)
    assert b[0] == pytest.approx(0.00085) and b[-1] == pytest.approx(0.012)


def test_bad_schedules_are_named():
    with pytest.raises(ValueError, match=r"unknown noise schedule 'quadratic'; known: cosine, linear, scaled_linear"):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError, match="num_timesteps must be >= 1, got 0"):
        make_betas("linear", 0)
