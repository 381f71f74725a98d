"""Scaffolds that host any registered token mixer."""
from .block import Block
from .isotropic import IsotropicBackbone

__all__ = ["Block", "IsotropicBackbone"]
