import pytest
import torch

from visionmix import build_model


def test_tensor_mode_runs_the_backbone_and_loss_needs_an_objective():
    model = build_model(dict(type="DiffusionModel", backbone=dict(
        type="isotropic", input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=4)))
    x = torch.randn(2, 3, 8, 8)
    out = model(x, torch.tensor([1, 2]), torch.tensor([0, 1]), mode="tensor")
    assert out.shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="model.diffusion"):
        model(x, mode="loss")
    with pytest.raises(ValueError, match="unknown mode"):
        model(x, torch.tensor([1, 2]), mode="predictt")
