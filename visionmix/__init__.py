"""visionmix: interchangeable token mixers in shared diffusion scaffolds.

``import visionmix`` is cheap: the registries and the component subpackages (torch, mmengine, timm) load on
first use of an attribute, so light modules such as ``visionmix.cli`` serve the tools' ``--help`` at once.
Touching any registry name imports every subpackage, which registers all components.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["BACKBONES", "FFNS", "MIXERS", "MODELS", "OBJECTIVES", "build_model", "list_ffns", "list_mixers"]
SUBPACKAGES = ("layers", "mixers", "backbones", "diffusion", "models")


def __getattr__(name: str) -> Any:
    if name in __all__:
        registry = importlib.import_module(".registry", __name__)
        for package in SUBPACKAGES:  # importing them registers their components
            importlib.import_module(f".{package}", __name__)
        return getattr(registry, name)
    if name in SUBPACKAGES or name in ("registry", "config", "engine", "datasets", "evaluation", "flops", "ops", "hub",
                                       "converters", "visualization"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'visionmix' has no attribute {name!r}")
