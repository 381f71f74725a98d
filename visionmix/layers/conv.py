"""Convolution pieces shared by the convolutional token mixers (``dico_conv``, ``conv_mixer``)."""
from __future__ import annotations

import torch.nn as nn


def depthwise_conv(dim: int, kernel_size: int, *, owner: str, min_size: int = 1) -> nn.Conv2d:
    """Depthwise k×k convolution (one filter per channel, with bias) with same padding, so any H×W keeps its
    size. ``kernel_size`` must be an odd integer >= ``min_size``; an even one would shift the grid by half a
    pixel, so it is an error naming ``owner`` (the mixer's registered name)."""
    if not isinstance(kernel_size, int) or kernel_size < min_size or kernel_size % 2 == 0:
        raise ValueError(f"{owner} kernel_size must be an odd integer >= {min_size}, got {kernel_size!r}")
    return nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
