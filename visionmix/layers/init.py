"""Weight-init schemes that parts call from their ``init_weights()`` (one place, named after their origin)."""
from __future__ import annotations

import torch.nn as nn
from timm.layers import trunc_normal_


def vit_init_(module: nn.Module, std: float = 0.02) -> None:
    """timm/Swin/RMT convention: every Linear trunc-normal(std), zero bias; LayerNorm ones/zeros; convs reset."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            m.reset_parameters()


def xavier_init_(module: nn.Module) -> None:
    """DiT/DiCo convention: xavier-uniform weights for every Linear and Conv2d (fan over the kernel), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
