"""visionmix: interchangeable token mixers in shared diffusion scaffolds."""
from .registry import BACKBONES, FFNS, MIXERS, MODELS, OBJECTIVES, build_model, list_ffns, list_mixers

# importing the subpackages registers their components
from . import layers, mixers, backbones, diffusion, models  # noqa: E402,F401  isort: skip

__version__ = "0.1.0"
__all__ = ["BACKBONES", "FFNS", "MIXERS", "MODELS", "OBJECTIVES", "build_model", "list_ffns", "list_mixers"]
