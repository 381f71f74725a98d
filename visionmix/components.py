"""Every component visionmix registers, imported in one place.

A config names components by registered name (``"attention"``, ``"NaNGuardHook"``), so whatever reads a config
first makes sure they are all registered: :func:`register_all_modules`. Importing the subpackages registers their
classes (mixers, FFNs, backbones, objectives, models, datasets) and the training hooks; the Runner and the zoo are
not needed for that and are not imported.
"""
from __future__ import annotations


def register_all_modules() -> None:
    """Import every subpackage that registers components (idempotent, cheap after the first call)."""
    from . import backbones, datasets, diffusion, layers, mixers, models  # noqa: F401
    from .engine import hooks  # noqa: F401
