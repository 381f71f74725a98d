"""Scaffolds that host any registered token mixer, all implementing the ``Denoiser`` interface."""
from .base import Denoiser
from .block import Block
from .isotropic import IsotropicBackbone
from .unet import UNetBackbone

__all__ = ["Denoiser", "Block", "IsotropicBackbone", "UNetBackbone"]
