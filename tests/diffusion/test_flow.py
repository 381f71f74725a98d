"""Flow matching on the linear path: interpolant, target, loss and the ODE/SDE samplers against exact fields."""
import pytest
import torch

from visionmix.diffusion import FlowMatching
from visionmix.registry import OBJECTIVES, build

F64 = torch.float64
M, S = 0.5, 0.5  # data distribution N(M, S^2) element-wise


def _col(t, x):
    return t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def gaussian_velocity(x, t):
    """E[x_1 - x_0 | x_t = x] for x_1 ~ N(M, S^2), x_0 ~ N(0, 1): x_t ~ N(t M, sigma_t^2),
    sigma_t^2 = t^2 S^2 + (1 - t)^2, so v = M + (t S^2 - (1 - t)) / sigma_t^2 (x - t M)."""
    t = _col(t, x)
    return M + (t * S ** 2 - (1 - t)) / (t ** 2 * S ** 2 + (1 - t) ** 2) * (x - t * M)


def gaussian_score(x, t):
    t = _col(t, x)
    return -(x - t * M) / (t ** 2 * S ** 2 + (1 - t) ** 2)


def test_path_and_target_are_exact():
    fm = FlowMatching()
    noise, data = torch.randn(4, 3, 2, 2, dtype=F64), torch.randn(4, 3, 2, 2, dtype=F64)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    x_t = fm.interpolate(noise, data, t)
    assert torch.equal(x_t[0], noise[0]) and torch.equal(x_t[3], data[3])
    torch.testing.assert_close(x_t[1], 0.25 * data[1] + 0.75 * noise[1])
    assert torch.equal(fm.velocity_target(noise, data), data - noise)
    # d/dt of the path, by finite differences, is the target
    h = 1e-6
    fd = (fm.interpolate(noise, data, t + h) - fm.interpolate(noise, data, t - h)) / (2 * h)
    torch.testing.assert_close(fd, data - noise)


def test_loss_is_zero_for_the_true_velocity_and_the_model_sees_raw_t():
    fm = FlowMatching()
    data, noise = torch.randn(3, 4, 4, 4), torch.randn(3, 4, 4, 4)
    t = torch.tensor([0.1, 0.6, 0.95])
    seen = []

    def model_fn(x, t_model, y=None):
        seen.append(t_model)
        torch.testing.assert_close(x, fm.interpolate(noise, data, t_model))
        return data - noise

    losses = fm.training_losses(model_fn, data, dict(y=None), noise=noise, t=t)
    assert set(losses) == {"loss"} and losses["loss"].shape == (3,)
    assert torch.all(losses["loss"] == 0)
    assert torch.equal(seen[0], t)  # continuous t in [0, 1], not rescaled
    # a learn_sigma backbone outputs 2C channels: only the first C are the velocity
    losses = fm.training_losses(lambda x, t: torch.cat([data - noise, torch.randn_like(x)], 1), data, noise=noise, t=t)
    assert torch.all(losses["loss"] == 0)
    off = fm.training_losses(lambda x, t: data - noise + 1.0, data, noise=noise, t=t)["loss"]
    torch.testing.assert_close(off, torch.ones(3))
    with pytest.raises(ValueError, match="must output"):
        fm.training_losses(lambda x, t: x[:, :1], data)


def test_sample_t_range_and_reproducibility():
    fm = FlowMatching(train_eps=0.1)
    t = fm.sample_t(5000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32 and t.min() >= 0.1 and t.max() <= 0.9
    assert abs(t.mean().item() - 0.5) < 0.01
    assert torch.equal(t, fm.sample_t(5000, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        FlowMatching(train_eps=0.5)


def test_score_from_velocity_matches_the_gaussian_score():
    x = torch.randn(6, 1, 2, 2, dtype=F64)
    t = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.8, 0.99], dtype=F64)
    torch.testing.assert_close(FlowMatching.score_from_velocity(gaussian_velocity(x, t), x, t), gaussian_score(x, t))


def test_euler_lands_on_a_point_mass():
    """v(x, t) = (x_1 - x)/(1 - t) moves in straight lines, which Euler integrates exactly."""
    x1 = torch.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out = FlowMatching().sample(lambda x, t: (x1 - x) / _col(1 - t, x), (2, 3, 4, 4), sampler="euler", steps=7,
                                generator=torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(out, x1, atol=1e-5, rtol=0)


def test_ode_samplers_transport_noise_to_a_gaussian():
    """The exact flow maps x_0 = z to x_1 = M + S z; Heun (2nd order) beats Euler (1st) at equal steps."""
    z = torch.randn(500, 1, 2, 2, dtype=F64)
    exact = M + S * z
    fm = FlowMatching()
    err = {(s, n): (fm.sample(gaussian_velocity, z, sampler=s, steps=n, progress=False) - exact).abs().max().item()
           for s in ("euler", "heun") for n in (10, 20)}
    assert err["heun", 20] < 3e-3 and err["euler", 20] < 0.2
    assert err["heun", 10] < err["euler", 10] / 10
    assert err["euler", 10] / err["euler", 20] == pytest.approx(2, rel=0.2)  # first order
    assert err["heun", 10] / err["heun", 20] > 3  # second order (-> 4)
    assert torch.equal(fm.sample(gaussian_velocity, z, sampler="ode", steps=10, progress=False),
                       fm.sample(gaussian_velocity, z, sampler="heun", steps=10, progress=False))


def test_sde_sampler_reaches_the_gaussian_and_is_reproducible():
    fm = FlowMatching()
    out = fm.sample(gaussian_velocity, (4000, 1, 1, 1), sampler="sde", steps=100, progress=False,
                    generator=torch.Generator().manual_seed(0))
    assert out.mean().item() == pytest.approx(M, abs=0.03)
    assert out.std().item() == pytest.approx(S, rel=0.05)
    noise = torch.randn(2, 3, 4, 4)
    run = lambda seed: fm.sample(gaussian_velocity, noise, sampler="sde", steps=10,  # noqa: E731
                                 generator=torch.Generator().manual_seed(seed), progress=False)
    torch.manual_seed(1)
    a = run(0)
    torch.manual_seed(2)  # the global RNG must play no part
    assert torch.equal(a, run(0))
    assert not torch.allclose(a, run(1))


def test_sampler_options_and_errors():
    fm = FlowMatching()
    v = lambda x, t: 3 * torch.ones_like(x)  # noqa: E731
    out = fm.sample(v, torch.zeros(1, 1, 2, 2), sampler="euler", steps=4, clip_denoised=True, progress=False)
    assert torch.equal(out, torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="unknown sampler"):
        fm.sample(v, (1, 1, 2, 2), sampler="ddim", progress=False)
    with pytest.raises(ValueError, match="eta"):
        fm.sample(v, (1, 1, 2, 2), sampler="euler", eta=0.5, progress=False)


@pytest.mark.parametrize("sampler", ["euler", "heun", "sde"])
def test_cfg_style_model_fn_with_a_doubled_batch(sampler):
    def forward_with_cfg(x, t, y, cfg_scale):
        half = x[: len(x) // 2]
        v = -torch.cat([half, half]) + y.float().reshape(-1, 1, 1, 1) * 0.01
        cond, uncond = v.chunk(2)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided]), torch.zeros_like(x)], dim=1)

    out = build(OBJECTIVES, "flow_matching").sample(
        forward_with_cfg, (4, 4, 8, 8), sampler=sampler, steps=3, progress=False,
        model_kwargs=dict(y=torch.tensor([3, 7, 10, 10]), cfg_scale=4.0), generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 4, 8, 8) and torch.isfinite(out).all()
