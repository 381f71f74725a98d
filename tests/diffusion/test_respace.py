"""Respacing: kept timesteps, re-derived betas (exact in float64) and the map back to original timesteps."""
import numpy as np
import pytest
import torch

from visionmix.diffusion import GaussianDiffusion, respace_betas, space_timesteps


def test_ddim_striding():
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(1000, "ddim250") == list(range(0, 1000, 4))
    assert space_timesteps(10, "ddim4") == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="no integer stride"):
        space_timesteps(10, "ddim8")  # ceil(10 / s) is 10, 5, 4, ... : 8 is never reached


def test_even_spacing_includes_both_ends():
    assert space_timesteps(1000, "10") == list(range(0, 1000, 111))  # stride 999 / 9 = 111 exactly
    assert space_timesteps(1000, 10) == space_timesteps(1000, "10")
    kept = space_timesteps(1000, "250")
    assert len(kept) == 250 and kept[0] == 0 and kept[-1] == 999
    assert set(np.diff(kept)) <= {4, 5}
    assert space_timesteps(1000, "1000") == list(range(1000))
    assert space_timesteps(1000, "1") == [0]


def test_sections():
    kept = space_timesteps(300, [10, 15, 20])
    sections = [[k for k in kept if lo <= k < lo + 100] for lo in (0, 100, 200)]
    assert [len(s) for s in sections] == [10, 15, 20]
    assert [(s[0], s[-1]) for s in sections] == [(0, 99), (100, 199), (200, 299)]
    assert kept == space_timesteps(300, "10,15,20")
    # uneven split: the first T mod m sections get one extra step
    assert space_timesteps(10, [2, 2, 2]) == [0, 3, 4, 6, 7, 9]
    with pytest.raises(ValueError, match="cannot take"):
        space_timesteps(100, [60, 60])


@pytest.mark.parametrize("spec", ["250", "ddim50", [5, 30, 7], "1"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_respaced_betas_reproduce_the_kept_alpha_bar(spec, schedule):
    base = GaussianDiffusion(noise_schedule=schedule)
    kept = space_timesteps(1000, spec)
    d = base.respaced(spec)
    assert d.num_timesteps == len(kept) and d.betas.dtype == np.float64
    # float64 round-off only; cosine's capped last step (alpha_bar ratio ~1e-3) amplifies it through 1 - (1 - r)
    rtol = 1e-13 if schedule == "linear" else 1e-9
    np.testing.assert_allclose(np.cumprod(1.0 - d.betas), base.alphas_cumprod[kept], rtol=rtol, atol=0)
    np.testing.assert_array_equal(d.timestep_map, kept)
    np.testing.assert_array_equal(GaussianDiffusion(noise_schedule=schedule, timestep_respacing=spec).betas, d.betas)


def test_respace_betas_formula():
    abar = np.array([0.9, 0.8, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(respace_betas(abar, [1, 3, 4]), [1 - 0.8, 1 - 0.3 / 0.8, 1 - 0.1 / 0.3])
    with pytest.raises(ValueError):
        respace_betas(abar, [3, 1])


def test_respacing_a_respaced_process_composes_the_maps():
    twice = GaussianDiffusion().respaced("100").respaced("10")
    once = space_timesteps(1000, "100")
    np.testing.assert_array_equal(twice.timestep_map, [once[i] for i in space_timesteps(100, "10")])
    np.testing.assert_allclose(np.cumprod(1 - twice.betas), GaussianDiffusion().alphas_cumprod[twice.timestep_map],
                               rtol=1e-13)


class Recorder:
    """A denoiser that records the timesteps it is called with and predicts zero noise."""

    def __init__(self, learn_sigma=True):
        self.calls, self.learn_sigma = [], learn_sigma

    def __call__(self, x, t, **kwargs):
        self.calls.append(t.clone())
        return torch.zeros(x.shape[0], x.shape[1] * (2 if self.learn_sigma else 1), *x.shape[2:])


def test_training_on_a_respaced_process_calls_the_model_with_original_timesteps():
    d = GaussianDiffusion().respaced("ddim50")
    model = Recorder()
    d.training_losses(model, torch.randn(3, 2, 4, 4), t=torch.tensor([0, 1, 49]))
    assert model.calls[0].tolist() == [0, 20, 980]
    assert model.calls[0].dtype == torch.long


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_visits_the_kept_timesteps_in_reverse(sampler):
    model = Recorder()
    GaussianDiffusion().sample(model, (2, 1, 2, 2), sampler=sampler, steps=10, progress=False,
                               generator=torch.Generator().manual_seed(0))
    assert [c[0].item() for c in model.calls] == list(range(999, -1, -111))
    assert all(torch.equal(c, c[:1].expand(2)) for c in model.calls)
    model = Recorder()
    GaussianDiffusion().sample(model, (1, 1, 2, 2), sampler=sampler, steps="ddim5", progress=False)
    assert [c.item() for c in model.calls] == [800, 600, 400, 200, 0]
    model = Recorder(learn_sigma=False)
    GaussianDiffusion(num_timesteps=50, learn_sigma=False).sample(model, (1, 1, 2, 2), sampler=sampler, steps=None,
                                                                  progress=False)
    assert [c.item() for c in model.calls] == list(range(49, -1, -1))
