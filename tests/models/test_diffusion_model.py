import pytest
import torch

from tests.conftest import randomize_
from visionmix import build_model
from visionmix.models import DiffusionDataPreprocessor


def tiny_model(**kw):
    backbone = dict(type="isotropic", input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2,
                    num_heads=4, num_classes=10)
    backbone.update(kw.pop("backbone", {}))
    return build_model(dict(type="DiffusionModel", backbone=backbone, **kw))


def test_tensor_mode_runs_the_backbone():
    model = randomize_(tiny_model())
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1])
    torch.testing.assert_close(model(x, y, mode="tensor", timesteps=t), model.backbone(x, t, y))
    with pytest.raises(ValueError, match="needs timesteps"):
        model(x, y, mode="tensor")
    with pytest.raises(ValueError, match="unknown mode"):
        model(x, y, mode="predictt")


def test_loss_mode_returns_scalar_terms_of_the_objective():
    model = tiny_model()
    losses = model(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, -1, 3]), mode="loss")
    assert set(losses) == {"loss", "mse", "vb"} and all(v.ndim == 0 for v in losses.values())
    torch.testing.assert_close(losses["loss"], losses["mse"] + losses["vb"])


def test_without_objective_loss_is_a_clear_error():
    model = tiny_model(diffusion=None)
    with pytest.raises(ValueError, match="model.diffusion"):
        model(torch.randn(2, 3, 8, 8), mode="loss")


def test_missing_label_becomes_the_null_class():
    model = tiny_model()
    assert model.backbone_labels(torch.tensor([3, -1])).tolist() == [3, 10]
    assert tiny_model(backbone=dict(num_classes=0)).backbone_labels(torch.tensor([3])) is None


def test_objective_follows_the_backbone_sigma_and_rejects_a_mismatch():
    assert tiny_model(backbone=dict(learn_sigma=False)).diffusion.learn_sigma is False
    with pytest.raises(ValueError, match="learn_sigma"):
        tiny_model(backbone=dict(learn_sigma=False), diffusion=dict(type="iddpm", learn_sigma=True))


def test_sampling_is_reproducible_and_guidance_changes_it():
    model = randomize_(tiny_model(sampling=dict(sampler="ddim", steps=5, clip_denoised=True)))
    labels = torch.tensor([1, 2])
    a = model.sample(labels, generator=torch.Generator().manual_seed(0))
    b = model.sample(labels, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 8, 8) and torch.equal(a, b) and a.abs().max() <= 1
    guided = model.sample(labels, generator=torch.Generator().manual_seed(0), cfg_scale=4.0)
    assert not torch.equal(a, guided)
    with pytest.raises(TypeError, match="unknown sampling options"):
        model.sample(labels, temperature=2.0)


def test_latent_model_without_vae_says_how_to_decode():
    model = tiny_model(data_preprocessor=dict(type=DiffusionDataPreprocessor, latent_scale=0.18215),
                       sampling=dict(steps=2))
    assert model.sample(1, decode=False).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="model.vae"):
        model.sample(1)
