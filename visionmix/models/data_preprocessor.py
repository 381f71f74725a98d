"""Batch preparation for diffusion training: images to [-1, 1], cached VAE latents to the model's scale."""
from __future__ import annotations

from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor


class DiffusionDataPreprocessor(BaseDataPreprocessor):
    """Moves a collated batch ``dict(inputs, labels)`` to the model's device and rescales ``inputs``.

    uint8 images map to ``x / 127.5 - 1`` in [-1, 1]; float inputs are VAE latents and are multiplied
    by ``latent_scale`` (0.18215 for the SD VAE, as in LDM/DiT) when it is set.
    """

    def __init__(self, latent_scale: float | None = None, non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        self.latent_scale = latent_scale

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        data = self.cast_data(data)
        inputs = data["inputs"]
        if inputs.dtype == torch.uint8:
            inputs = inputs.float() / 127.5 - 1.0
        else:
            inputs = inputs.float()
            if self.latent_scale is not None:
                inputs = inputs * self.latent_scale
        labels = data.get("labels")
        if labels is not None and not torch.is_tensor(labels):
            labels = torch.as_tensor(labels, device=inputs.device)
        return {"inputs": inputs, "labels": labels}
