"""visionmix.models.data_preprocessor: uint8 images to [-1, 1], latents to the model's scale, labels as tensors."""
import torch

from visionmix.models import DiffusionDataPreprocessor


def test_preprocessor_maps_uint8_to_unit_range_and_scales_latents():
    pixels = DiffusionDataPreprocessor()(dict(inputs=torch.tensor([[[[0, 255]]]], dtype=torch.uint8),
                                              labels=torch.tensor([1])))
    assert pixels["inputs"].tolist() == [[[[-1.0, 1.0]]]] and pixels["labels"].tolist() == [1]
    latents = DiffusionDataPreprocessor(latent_scale=0.5)(dict(inputs=torch.full((1, 4, 1, 1), 2.0), labels=[0]))
    assert torch.equal(latents["inputs"], torch.ones(1, 4, 1, 1))
    assert latents["labels"].tolist() == [0] and torch.is_tensor(latents["labels"])  # a list became a tensor
    every_level = DiffusionDataPreprocessor()(dict(inputs=torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)))
    torch.testing.assert_close(every_level["inputs"].flatten(), torch.arange(256.0) / 127.5 - 1)
    assert every_level["labels"] is None
