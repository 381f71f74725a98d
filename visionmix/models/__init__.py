"""Top-level trainable models."""
from .data_preprocessor import DiffusionDataPreprocessor
from .diffusion_model import DiffusionModel

__all__ = ["DiffusionDataPreprocessor", "DiffusionModel"]
