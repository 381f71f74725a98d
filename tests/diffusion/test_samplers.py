"""Shared sampling plumbing: generator-only randomness, device inference, progress bars."""
import pytest
import torch
import torch.nn as nn

from visionmix.diffusion import FlowMatching, GaussianDiffusion
from visionmix.diffusion.samplers import infer_device, initial_noise, randn


class Tiny(nn.Module):
    def __init__(self, out_factor=2):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.1))
        self.out_factor = out_factor

    def forward(self, x, t, y=None):
        return torch.cat([self.scale * x] * self.out_factor, dim=1)

    def forward_with_cfg(self, x, t, y, cfg_scale):
        return self.forward(x, t, y)


def test_infer_device_from_modules_and_bound_methods():
    model = Tiny()
    assert infer_device(model) == torch.device("cpu")
    assert infer_device(model.forward_with_cfg) == torch.device("cpu")
    assert infer_device(lambda x, t: x) == torch.device("cpu")


def test_noise_comes_from_the_generator_only():
    a = randn((3, 4), torch.Generator().manual_seed(5), "cpu")
    assert torch.equal(a, torch.randn((3, 4), generator=torch.Generator().manual_seed(5)))
    given = torch.ones(2, 2)
    assert initial_noise(Tiny(), given, None, None) is given


@pytest.mark.parametrize("objective,sampler,kwargs", [
    (GaussianDiffusion(), "ddpm", {}), (GaussianDiffusion(), "ddim", dict(eta=1.0)),
    (FlowMatching(), "sde", {}), (FlowMatching(), "heun", {})])
def test_sampling_leaves_the_global_rng_alone(objective, sampler, kwargs):
    state = torch.get_rng_state()
    model = Tiny()
    out = objective.sample(model.forward_with_cfg, (4, 2, 4, 4), sampler=sampler, steps=4, progress=False,
                           generator=torch.Generator().manual_seed(0), model_kwargs=dict(y=None, cfg_scale=1.0),
                           **kwargs)
    assert out.shape == (4, 2, 4, 4)
    assert torch.equal(torch.get_rng_state(), state)


def test_progress_bar_is_shown(capsys):
    GaussianDiffusion().sample(Tiny(), (1, 1, 2, 2), sampler="ddim", steps=3, progress=True)
    FlowMatching().sample(Tiny(), (1, 1, 2, 2), sampler="euler", steps=3, progress=True)
    err = capsys.readouterr().err
    assert "ddim (3 steps)" in err and "euler (3 steps)" in err
