"""Converters from the official checkpoints of DiT, SiT, DiCo, U-ViT and Diffusion-RWKV to visionmix.

    from visionmix.converters import convert, load_official
    state = convert("dit", load_official("DiT-XL-2-256x256.pt"))
    model = visionmix.build_model(load_config("configs/dit/dit_xl2_in256.py").model)
    model.load_state_dict(state, strict=True)

``convert(source, checkpoint)`` takes whatever the official file holds once loaded (a state dict, or a
training checkpoint wrapping one), checks that its keys are the official layout of ``source`` (a file
of another layout is an error naming missing and unexpected keys, and the source it does fit, if any),
and returns the state dict of the visionmix ``DiffusionModel`` (keys ``backbone.*``) of the matching
config. Each source's module documents its renames and anything beyond a rename; ``SOURCES[name].releases``
lists the published files and their configs. ``visionmix convert SOURCE IN OUT`` does the same on files.
"""
from __future__ import annotations

from typing import Any

import torch

from . import dico, dit, drwkv, sit, uvit
from .layout import LayoutError
from .loading import ALLOWED_CLASSES, UnsafeCheckpointError, load_official
from .source import MODEL_PREFIX, Release, Source

SOURCES: dict[str, Source] = {m.SOURCE.name: m.SOURCE for m in (dit, sit, dico, uvit, drwkv)}

__all__ = ["SOURCES", "ALLOWED_CLASSES", "MODEL_PREFIX", "LayoutError", "Release", "Source", "UnknownSourceError",
           "UnsafeCheckpointError", "convert", "get_source", "load_official", "unwrap"]


class UnknownSourceError(ValueError):
    """A source name that is not one of :data:`SOURCES`."""


def get_source(source: str) -> Source:
    if source not in SOURCES:
        raise UnknownSourceError(f"unknown checkpoint source {source!r}; known sources: {', '.join(SOURCES)}")
    return SOURCES[source]


def unwrap(source: str, checkpoint: Any) -> dict[str, torch.Tensor]:
    """The official state dict inside ``checkpoint`` (EMA weights first for training checkpoints)."""
    return get_source(source).unwrap(checkpoint)


def convert(source: str, checkpoint: Any) -> dict[str, torch.Tensor]:
    """Official checkpoint of ``source`` (as loaded) -> visionmix model state dict (loads with strict=True)."""
    return get_source(source).convert(checkpoint, others=SOURCES)
