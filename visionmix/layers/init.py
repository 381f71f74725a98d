"""Weight-init schemes, in one place, named after their origin.

Recursive schemes (``vit_init_``, ``xavier_init_``) are what parts call from their ``init_weights()``; one-module
schemes (``xavier_linear_``, ``trunc_normal_linear_``, ``xavier_linear_conv_``) are what a scaffold hands its init
walk (``Denoiser.init_parts``), which visits the modules itself.
"""
from __future__ import annotations

import torch.nn as nn
from timm.layers import trunc_normal_


def vit_init_(module: nn.Module, std: float = 0.02) -> None:
    """timm/Swin/RMT convention: every Linear trunc-normal(std), zero bias; LayerNorm ones/zeros; convs reset.

    A submodule with its own ``init_weights()`` (a LePE conv with the official trunc-normal init, ...) owns its
    subtree, as everywhere in visionmix: it is initialised by that method, not overwritten by this scheme."""
    for child in module.children():
        if hasattr(child, "init_weights"):
            child.init_weights()
        else:
            vit_init_(child, std)
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        module.reset_parameters()


def xavier_init_(module: nn.Module) -> None:
    """DiT/DiCo convention: xavier-uniform weights for every Linear and Conv2d (fan over the kernel), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def xavier_linear_(module: nn.Module) -> None:
    """DiT's scaffold scheme, for one module: xavier-uniform Linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def trunc_normal_linear_(module: nn.Module) -> None:
    """U-ViT's scaffold scheme, for one module: trunc-normal(0.02) Linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def xavier_linear_conv_(module: nn.Module) -> None:
    """DiCo's scaffold scheme, for one module: xavier-uniform Linear and Conv2d weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
