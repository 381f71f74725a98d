"""Values a config must have the right kind of: sizes, counts and steps, checked when the config is loaded.

``max_iters=abc`` or ``depth=-3`` used to surface as a traceback deep inside a constructor or the Runner (or not at
all: ``hidden_size=0`` builds an empty model). :func:`check_values` names the key, the value and the valid range,
for every tool, before anything is built. Keys a config does not set are not checked.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping

from mmengine.config import Config

POSITIVE_INT = "a positive integer"
NON_NEGATIVE_INT = "an integer >= 0"
NON_NEGATIVE_NUMBER = "a number >= 0"
POSITIVE_NUMBER = "a number > 0"
POSITIVE_INTS = "a list of positive integers"

_TESTS: dict[str, Callable[[Any], bool]] = {
    POSITIVE_INT: lambda v: _is_int(v) and v > 0,
    NON_NEGATIVE_INT: lambda v: _is_int(v) and v >= 0,
    NON_NEGATIVE_NUMBER: lambda v: _is_number(v) and v >= 0,
    POSITIVE_NUMBER: lambda v: _is_number(v) and v > 0,
    POSITIVE_INTS: lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) and x > 0 for x in v),
}
# dotted key -> kind; "*" matches any one key (every hook of custom_hooks)
RULES: dict[str, str] = {
    "model.backbone.hidden_size": POSITIVE_INT,
    "model.backbone.depth": POSITIVE_INT,
    "model.backbone.depths": POSITIVE_INTS,
    "model.backbone.patch_size": POSITIVE_INT,
    "model.backbone.input_size": POSITIVE_INT,
    "model.backbone.in_channels": POSITIVE_INT,
    "model.backbone.num_heads": POSITIVE_INT,
    "model.backbone.num_classes": NON_NEGATIVE_INT,
    "model.backbone.mlp_ratio": POSITIVE_NUMBER,
    "model.sampling.steps": POSITIVE_INT,
    "model.sampling.cfg_scale": NON_NEGATIVE_NUMBER,
    "model.diffusion.num_timesteps": POSITIVE_INT,
    "train_cfg.max_iters": POSITIVE_INT,
    "train_cfg.max_epochs": POSITIVE_INT,
    "train_cfg.val_interval": POSITIVE_INT,
    "train_dataloader.batch_size": POSITIVE_INT,
    "train_dataloader.num_workers": NON_NEGATIVE_INT,
    "optim_wrapper.optimizer.lr": NON_NEGATIVE_NUMBER,
    "default_hooks.logger.interval": POSITIVE_INT,
    "custom_hooks.*.interval": POSITIVE_INT,
}


def check_values(cfg: Mapping) -> None:
    """Raise ``ValueError`` naming the first value outside its range (see :data:`RULES`)."""
    for pattern, kind in RULES.items():
        for key, value in _find(cfg, pattern.split("."), ""):
            if value is not None and not _TESTS[kind](value):
                raise ValueError(f"{key} must be {kind}, got {value!r}")


def _find(node: Any, parts: list[str], where: str):
    """(dotted key, value) of every place ``parts`` (with ``*`` wildcards) names under ``node``."""
    if not parts:
        yield where, node
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, (Mapping, Config)):
        keys = list(node.keys()) if head == "*" else [head] if head in node.keys() else []
        for key in keys:
            yield from _find(node[key], rest, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)) and head == "*":
        for i, item in enumerate(node):
            yield from _find(item, rest, f"{where}[{i}]")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
