"""``DiffusionModel``: an mmengine ``BaseModel`` holding a denoiser backbone and its diffusion objective."""
from __future__ import annotations

from typing import Any

import torch
from mmengine.model import BaseModel

from ..registry import BACKBONES, MODELS, OBJECTIVES, ComponentCfg, build


@MODELS.register_module(name="DiffusionModel")
class DiffusionModel(BaseModel):
    """``backbone`` is the denoiser ``(x_t, t, y) -> prediction``; ``diffusion`` the objective config.

    ``forward(inputs, t, y, mode="tensor")`` runs the backbone. ``mode="loss"`` asks the objective for
    its training losses and therefore needs ``diffusion`` to be configured.
    """

    def __init__(self, backbone: ComponentCfg, diffusion: ComponentCfg | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build(BACKBONES, backbone)
        self.diffusion = build(OBJECTIVES, diffusion) if diffusion is not None else None

    def forward(self, inputs: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None,
                mode: str = "tensor", **kwargs: Any) -> Any:
        if mode == "tensor":
            if t is None:
                raise ValueError("mode='tensor' runs the denoiser and needs timesteps t")
            return self.backbone(inputs, t, y)
        if mode == "loss":
            if self.diffusion is None:
                raise ValueError("mode='loss' needs a diffusion objective: set model.diffusion in the config")
            return self.diffusion.training_losses(self.backbone, inputs, dict(y=y), t=t, **kwargs)
        raise ValueError(f"unknown mode {mode!r}; this model supports 'tensor' and 'loss'")
