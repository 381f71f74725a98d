"""Training engine: the mmengine Runner with data-only checkpoints, mmengine's checkpoint loaders wired to
:mod:`visionmix.checkpoint_io`, and hooks.

Names load on first use (PEP 562), so importing ``visionmix.engine.hooks`` (to register the hooks a config may name)
does not pull in the Runner, the zoo and the config loader above it.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "NaNGuardHook": ".hooks", "NonFiniteLossError": ".hooks", "RNGStateHook": ".hooks", "SampleGridHook": ".hooks",
    "VisionMixRunner": ".runner",
    "CheckpointError": "..checkpoint_io", "CheckpointMismatchError": "..checkpoint_io", "is_trusted": "..checkpoint_io",
    "trust_path": "..checkpoint_io",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
