"""IDDPM Gaussian diffusion: tables, posterior, losses, gradients and samplers against independent oracles."""
import math

import numpy as np
import pytest
import torch

from visionmix.diffusion import GaussianDiffusion
from visionmix.registry import OBJECTIVES, build

F64 = torch.float64


def abar_oracle(T=1000):
    """alpha_bar of Ho et al.'s linear schedule, written out independently of the library."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, T))


def point_oracle(x0, abar):
    """The exact eps-predictor when the data is the single point ``x0``: eps = (x_t - sqrt(abar) x0)/sqrt(1-abar)."""
    abar = torch.as_tensor(abar)

    def model_fn(x, t):
        a = abar[t].to(x.dtype).reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return model_fn


def gaussian_oracle(m, s, abar):
    """Exact eps-predictor E[eps | x_t] when x_0 ~ N(m, s^2) element-wise."""
    abar = torch.as_tensor(abar)

    def model_fn(x, t):
        a = abar[t].to(x.dtype).reshape(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s ** 2 + 1 - a)
    return model_fn


def with_variance_channels(model_fn, v=0.0):
    """Append constant learned-range channels v to an eps-only model (what a learn_sigma backbone outputs)."""
    return lambda x, t, **kw: torch.cat([model_fn(x, t, **kw), torch.full_like(x, v)], dim=1)


# ---------------------------------------------------------------- tables
def test_posterior_matches_the_closed_form_and_bayes_rule():
    d = GaussianDiffusion(learn_sigma=False)
    abar = abar_oracle()
    betas = np.linspace(1e-4, 0.02, 1000)
    t = torch.tensor([1, 2, 10, 500, 999])
    x0, xt = torch.randn(5, 3, 2, 2, dtype=F64), torch.randn(5, 3, 2, 2, dtype=F64)
    mean, var, log_var = d.q_posterior_mean_variance(x0, xt, t)

    col = lambda v: torch.tensor(v).reshape(-1, 1, 1, 1)  # noqa: E731
    a, a_prev, b = col(abar[t.numpy()]), col(abar[t.numpy() - 1]), col(betas[t.numpy()])
    closed_mean = (a_prev.sqrt() * b / (1 - a)) * x0 + ((1 - b).sqrt() * (1 - a_prev) / (1 - a)) * xt
    closed_var = b * (1 - a_prev) / (1 - a)
    torch.testing.assert_close(mean, closed_mean)
    torch.testing.assert_close(var, closed_var)
    torch.testing.assert_close(log_var, closed_var.log())
    # Bayes: prior x_{t-1} ~ N(sqrt(a_prev) x0, 1 - a_prev), likelihood x_t | x_{t-1} ~ N(sqrt(1-b) x_{t-1}, b)
    precision = 1 / (1 - a_prev) + (1 - b) / b
    bayes_mean = (a_prev.sqrt() * x0 / (1 - a_prev) + (1 - b).sqrt() * xt / b) / precision
    torch.testing.assert_close(mean, bayes_mean)
    torch.testing.assert_close(var, 1 / precision)


def test_posterior_log_variance_is_clipped_at_t0():
    d = GaussianDiffusion()
    zeros = torch.zeros(2, 1, 1, 1, dtype=F64)
    _, var, log_var = d.q_posterior_mean_variance(zeros, zeros, torch.tensor([0, 1]))
    assert var[0].item() == 0.0
    assert log_var[0].item() == pytest.approx(log_var[1].item())


def test_q_sample_statistics_and_x0_recovery():
    d = GaussianDiffusion()
    x0 = torch.full((20000, 1, 1, 1), 0.7, dtype=F64)
    t = torch.full((20000,), 300)
    noise = torch.randn_like(x0)
    xt = d.q_sample(x0, t, noise)
    a = abar_oracle()[300]
    assert xt.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=0.02)
    assert xt.std().item() == pytest.approx(math.sqrt(1 - a), rel=0.02)
    torch.testing.assert_close(d.predict_x0_from_eps(xt, t, noise), x0)
    torch.testing.assert_close(d.predict_eps_from_x0(xt, t, x0), noise)


def test_tables_are_cast_to_the_input_dtype():
    d = GaussianDiffusion()
    x = torch.randn(2, 3, 4, 4)
    assert d.q_sample(x, torch.tensor([0, 999])).dtype == torch.float32
    assert d.q_sample(x.double(), torch.tensor([0, 999])).dtype == F64


def test_learned_range_spans_clipped_posterior_to_beta():
    d = GaussianDiffusion(learn_sigma=True)
    x, t = torch.randn(3, 2, 4, 4, dtype=F64), torch.tensor([0, 7, 999])
    eps = torch.randn_like(x)
    betas = torch.tensor(np.linspace(1e-4, 0.02, 1000))
    low = d.p_mean_variance_from_output(torch.cat([eps, -torch.ones_like(x)], 1), x, t)["log_variance"]
    high = d.p_mean_variance_from_output(torch.cat([eps, torch.ones_like(x)], 1), x, t)["log_variance"]
    mid = d.p_mean_variance_from_output(torch.cat([eps, torch.zeros_like(x)], 1), x, t)["log_variance"]
    _, _, clipped = d.q_posterior_mean_variance(x, x, t)
    torch.testing.assert_close(low, clipped.expand_as(x))
    torch.testing.assert_close(high, betas[t].log().reshape(-1, 1, 1, 1).expand_as(x))
    torch.testing.assert_close(mid, (low + high) / 2)


def test_fixed_variances():
    x, t = torch.randn(2, 1, 2, 2, dtype=F64), torch.tensor([0, 500])
    variance = lambda d: d.p_mean_variance_from_output(x, x, t)["variance"][:, 0, 0, 0]  # noqa: E731
    large = variance(GaussianDiffusion(learn_sigma=False))
    small = variance(GaussianDiffusion(learn_sigma=False, sigma_small=True))
    a = abar_oracle()
    post = lambda i: (1 - a[i - 1]) / (1 - a[i]) * (1 - a[i] / a[i - 1])  # noqa: E731
    np.testing.assert_allclose(large.numpy(), [post(1), 1 - a[500] / a[499]], rtol=1e-10)
    np.testing.assert_allclose(small.numpy(), [post(1), post(500)], rtol=1e-10)


# ---------------------------------------------------------------- training losses
def test_true_noise_gives_zero_mse_and_true_posterior_gives_zero_vb():
    x0 = torch.randn(6, 3, 4, 4, dtype=F64)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 1, 5, 100, 998, 999])
    fixed = GaussianDiffusion(learn_sigma=False).training_losses(lambda x, t: noise, x0, noise=noise, t=t)
    assert set(fixed) == {"loss", "mse"} and fixed["loss"].shape == (6,)
    assert torch.all(fixed["mse"] == 0)
    # v = -1 selects the (clipped) posterior variance: p == q for t > 0, so the KL term vanishes
    learned = GaussianDiffusion(learn_sigma=True).training_losses(
        lambda x, t: torch.cat([noise, -torch.ones_like(x)], 1), x0, noise=noise, t=t)
    assert torch.all(learned["mse"] == 0)
    assert torch.allclose(learned["vb"][1:], torch.zeros(5, dtype=F64), atol=1e-9)
    assert learned["vb"][0] > 0  # t == 0: the decoder NLL, in bits
    torch.testing.assert_close(learned["loss"], learned["mse"] + learned["vb"])


def test_vb_is_the_kl_in_bits_and_the_decoder_nll_at_t0():
    d = GaussianDiffusion(learn_sigma=True)
    x0 = torch.randint(0, 256, (2, 3, 4, 4)).to(F64) / 127.5 - 1
    x_t = torch.randn_like(x0)
    out = torch.randn(2, 6, 4, 4, dtype=F64).tanh()
    t = torch.tensor([0, 40])
    vb = d.vb_terms_bpd(out, x0, x_t, t)
    q_mean, _, q_logvar = d.q_posterior_mean_variance(x0, x_t, t)
    p = d.p_mean_variance_from_output(out, x_t, t)
    q = torch.distributions.Normal(q_mean[1], (0.5 * q_logvar[1]).exp())
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(p["mean"][1], p["variance"][1].sqrt()))
    assert vb[1].item() == pytest.approx(kl.mean().item() / math.log(2), rel=1e-9)
    from visionmix.diffusion import discretized_gaussian_log_likelihood
    nll = -discretized_gaussian_log_likelihood(x0[:1], means=p["mean"][:1], log_scales=0.5 * p["log_variance"][:1])
    assert vb[0].item() == pytest.approx(nll.mean().item() / math.log(2), rel=1e-9)


def test_vb_trains_only_the_variance_and_mse_only_the_mean():
    d = GaussianDiffusion(learn_sigma=True)
    x0 = torch.randn(4, 3, 4, 4)
    out = torch.randn(4, 6, 4, 4, requires_grad=True)
    losses = d.training_losses(lambda x, t: out * 1.0, x0, t=torch.tensor([0, 3, 50, 999]))
    (g_vb,) = torch.autograd.grad(losses["vb"].sum(), out, retain_graph=True)
    assert torch.all(g_vb[:, :3] == 0) and g_vb[:, 3:].abs().sum() > 0
    (g_mse,) = torch.autograd.grad(losses["mse"].sum(), out)
    assert torch.all(g_mse[:, 3:] == 0) and g_mse[:, :3].abs().sum() > 0


def test_rescaled_mse_scales_vb_by_T_over_1000():
    x0, noise = torch.randn(3, 2, 2, 2, dtype=F64), torch.randn(3, 2, 2, 2, dtype=F64)
    out = torch.randn(3, 4, 2, 2, dtype=F64).tanh()
    t = torch.tensor([0, 10, 3999])
    plain = GaussianDiffusion(num_timesteps=4000).training_losses(lambda x, t: out, x0, noise=noise, t=t)
    scaled = GaussianDiffusion(num_timesteps=4000, rescale_learned_sigmas=True).training_losses(
        lambda x, t: out, x0, noise=noise, t=t)
    torch.testing.assert_close(scaled["vb"], 4 * plain["vb"])
    torch.testing.assert_close(scaled["mse"], plain["mse"])


def test_sample_t_and_wrong_output_shape():
    d = GaussianDiffusion(learn_sigma=True)
    t = d.sample_t(1000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 999
    assert torch.equal(t, d.sample_t(1000, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="learn_sigma=True"):
        d.training_losses(lambda x, t: x, torch.randn(2, 3, 4, 4))


def test_registry_builds_both_objectives():
    d = build(OBJECTIVES, dict(type="iddpm", learn_sigma=True))
    assert isinstance(d, GaussianDiffusion) and d.learn_sigma and d.num_timesteps == 1000
    assert type(build(OBJECTIVES, "flow_matching")).__name__ == "FlowMatching"


# ---------------------------------------------------------------- samplers
@pytest.mark.parametrize("sampler,steps,learn_sigma", [("ddpm", 50, True), ("ddpm", 1000, False),
                                                       ("ddim", 20, True), ("ddim", "ddim25", False),
                                                       ("dpmpp_2m", 10, True), ("dpmpp_2m", 25, False)])
def test_samplers_recover_a_single_data_point(sampler, steps, learn_sigma):
    x0 = torch.linspace(-0.9, 0.9, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    model = point_oracle(x0, abar_oracle())
    if learn_sigma:
        model = with_variance_channels(model, 0.3)
    d = GaussianDiffusion(learn_sigma=learn_sigma)
    out = d.sample(model, (2, 3, 4, 4), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(1),
                   progress=False)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("sampler,steps,sigma_small", [("ddpm", 250, False), ("ddpm", 250, True),
                                                       ("ddim", 100, False)])
def test_samplers_reproduce_a_gaussian_data_distribution(sampler, steps, sigma_small):
    """x_0 ~ N(m, s^2) with the exact eps-predictor: samples must have mean m and std s (up to Monte Carlo
    error, ~1.5% here, and the samplers' own discretisation error, which grows as steps shrink)."""
    m, s = 0.5, 0.5
    d = GaussianDiffusion(learn_sigma=False, sigma_small=sigma_small)
    out = d.sample(gaussian_oracle(m, s, abar_oracle()), (4000, 1, 1, 1), sampler=sampler, steps=steps,
                   generator=torch.Generator().manual_seed(0), progress=False)
    assert out.mean().item() == pytest.approx(m, abs=0.03)
    assert out.std().item() == pytest.approx(s, rel=0.05)


def probability_flow_map(noise, m, s, abar_T):
    """Where the probability-flow ODE takes x_T when x_0 ~ N(m, s^2): the affine map between the two Gaussians."""
    return m + s * (noise - np.sqrt(abar_T) * m) / np.sqrt(abar_T * s ** 2 + 1 - abar_T)


def test_dpm_solver_is_second_order_and_ddim_first():
    # both integrate the probability-flow ODE; doubling the steps divides the error by ~4 (DPM-Solver++(2M)) or
    # ~2 (DDIM, first order). Few uniformly spread steps are not in this regime on the linear schedule: its
    # last stretch (abar 0.99 -> 1) is one large step in log-SNR.
    m, s, abar = 0.5, 0.5, abar_oracle()
    noise = torch.randn(500, 1, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = probability_flow_map(noise, m, s, abar[-1])
    d = GaussianDiffusion(learn_sigma=False)
    error = {(sampler, steps): (d.sample(gaussian_oracle(m, s, abar), noise, sampler=sampler, steps=steps,
                                         progress=False) - exact).abs().max().item()
             for sampler in ("ddim", "dpmpp_2m") for steps in (200, 400)}
    assert 1.7 < error["ddim", 200] / error["ddim", 400] < 2.3
    assert error["dpmpp_2m", 200] / error["dpmpp_2m", 400] > 3.5
    assert error["dpmpp_2m", 400] < error["ddim", 400] / 5


def test_dpm_solver_first_step_is_ddim_and_it_takes_no_eta():
    d = GaussianDiffusion(learn_sigma=False)
    noise = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    model = gaussian_oracle(0.2, 0.7, abar_oracle())
    # with two steps the solver takes one DDIM step, then returns x0_hat: both samplers agree exactly
    torch.testing.assert_close(d.sample(model, noise, sampler="dpmpp_2m", steps=2, progress=False),
                               d.sample(model, noise, sampler="ddim", steps=2, progress=False), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="'dpmpp_2m' sampler does not take it"):
        d.sample(model, noise, sampler="dpmpp_2m", steps=2, eta=0.5, progress=False)


def test_ddim_eta0_is_deterministic_given_the_noise():
    d = GaussianDiffusion(learn_sigma=True)
    model = with_variance_channels(gaussian_oracle(0.0, 0.5, abar_oracle()), 0.0)
    noise = torch.randn(2, 3, 4, 4)
    a = d.sample(model, noise, sampler="ddim", steps=10, generator=torch.Generator().manual_seed(0), progress=False)
    b = d.sample(model, noise, sampler="ddim", steps=10, generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(a, b)
    fresh = lambda seed: d.sample(model, (2, 3, 4, 4), sampler="ddim", steps=10, progress=False,  # noqa: E731
                                  generator=torch.Generator().manual_seed(seed))
    assert torch.equal(fresh(0), fresh(0)) and not torch.allclose(fresh(0), fresh(1))


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_stochastic_loops_are_reproducible_with_a_generator(sampler, eta):
    d = GaussianDiffusion(learn_sigma=True)
    model = with_variance_channels(gaussian_oracle(0.0, 0.5, abar_oracle()), 0.5)
    noise = torch.randn(2, 3, 4, 4)
    run = lambda seed: d.sample(model, noise, sampler=sampler, steps=10, eta=eta,  # noqa: E731
                                generator=torch.Generator().manual_seed(seed), progress=False)
    torch.manual_seed(123)  # the global RNG must play no part
    a = run(0)
    torch.manual_seed(456)
    assert torch.equal(a, run(0))
    assert not torch.allclose(a, run(1))


def test_clip_denoised_keeps_the_ddpm_result_in_range():
    d = GaussianDiffusion(learn_sigma=False)
    wild = lambda x, t: 5 * torch.ones_like(x)  # noqa: E731  x0_hat far outside [-1, 1]
    out = d.sample(wild, (2, 1, 4, 4), steps=10, clip_denoised=True, generator=torch.Generator().manual_seed(0),
                   progress=False)
    assert out.abs().max() <= 1.0
    with pytest.raises(ValueError, match="unknown sampler"):
        d.sample(wild, (1, 1, 2, 2), sampler="euler", progress=False)


def test_cfg_style_model_fn_with_a_doubled_batch():
    """DiT's convention: forward_with_cfg(x, t, y, cfg_scale) guides the first half and duplicates it."""
    def forward_with_cfg(x, t, y, cfg_scale):
        half = x[: len(x) // 2]
        eps = torch.cat([half, half]) * 0.1 + y.float().reshape(-1, 1, 1, 1) * 0.01
        cond, uncond = eps.chunk(2)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided]), torch.zeros_like(x)], dim=1)

    y, kwargs = torch.tensor([3, 7, 1000, 1000]), dict(cfg_scale=4.0)
    d = GaussianDiffusion()
    out = d.sample(forward_with_cfg, (4, 4, 8, 8), sampler="ddpm", steps=5, model_kwargs=dict(y=y, **kwargs),
                   progress=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 4, 8, 8) and torch.isfinite(out).all()
    z = torch.randn(2, 4, 8, 8)  # DDIM (eta = 0) from duplicated noise keeps both halves identical
    out = d.sample(forward_with_cfg, torch.cat([z, z]), sampler="ddim", steps=5, model_kwargs=dict(y=y, **kwargs),
                   progress=False)
    assert torch.equal(out[:2], out[2:])


def test_with_a_visionmix_backbone():
    from visionmix.registry import BACKBONES

    backbone = build(BACKBONES, dict(type="isotropic", input_size=8, patch_size=2, in_channels=4, hidden_size=32,
                                     depth=1, num_heads=4, num_classes=10, learn_sigma=True))
    d = GaussianDiffusion(learn_sigma=True)
    x0, y = torch.randn(2, 4, 8, 8), torch.tensor([1, 2])
    losses = d.training_losses(backbone, x0, dict(y=y))
    assert losses["loss"].shape == (2,) and torch.isfinite(losses["loss"]).all()
    losses["loss"].mean().backward()
    z = torch.randn(2, 4, 8, 8)
    out = d.sample(backbone.forward_with_cfg, torch.cat([z, z]), sampler="ddim", steps=3,
                   model_kwargs=dict(y=torch.tensor([1, 2, 10, 10]), cfg_scale=1.5), progress=False)
    assert out.shape == (4, 4, 8, 8)
