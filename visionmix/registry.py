"""Registries for every pluggable part, and the builders that read config dicts.

A config's ``type`` may be the class itself (pure-Python configs), a dotted import path (what a YAML
dump of such a config contains), or a registered short name (``"attention"``). A bare string or class
stands for that component with its defaults, so ``--cfg-options model.backbone.mixer=linear_attention``
is a complete mixer swap.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Union

import torch.nn as nn
from mmengine.registry import Registry

MIXERS = Registry("token mixer", scope="visionmix", locations=["visionmix.mixers"])
FFNS = Registry("channel mixer (FFN)", scope="visionmix", locations=["visionmix.layers"])
BACKBONES = Registry("backbone", scope="visionmix", locations=["visionmix.backbones"])
MODELS = Registry("model", scope="visionmix", locations=["visionmix.models"])
OBJECTIVES = Registry("diffusion objective", scope="visionmix", locations=["visionmix.diffusion"])

ComponentCfg = Union[str, type, Mapping[str, Any]]


class UnknownComponentError(KeyError):
    """A config named a component that no registry knows (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def as_config(spec: ComponentCfg) -> dict:
    """Normalise a component spec to a fresh ``dict`` with a ``type`` key."""
    if isinstance(spec, (str, type)):
        return {"type": spec}
    if isinstance(spec, Mapping):
        if "type" not in spec:
            raise ValueError(f"component config {dict(spec)} has no 'type' key")
        return {k: copy.deepcopy(v) if k != "type" else v for k, v in spec.items() if k != "_delete_"}
    raise TypeError(f"expected a name, a class or a dict with 'type', got {type(spec).__name__}: {spec!r}")


def resolve_type(registry: Registry, type_: Any) -> type:
    """Return the class a ``type`` entry denotes, or raise listing what ``registry`` knows."""
    if not isinstance(type_, str):
        if callable(type_):
            return type_
        raise TypeError(f"'type' must be a class or a name, got {type_!r}")
    registry.import_from_location()
    found = registry.get(type_)
    if found is None:
        known = ", ".join(sorted(registry.module_dict)) or "(none registered)"
        raise UnknownComponentError(
            f"unknown {registry.name} {type_!r}. Known {registry.name}s: {known}. "
            "A dotted import path (package.module.Class) also works."
        )
    return found


def build(registry: Registry, spec: ComponentCfg, **defaults: Any) -> Any:
    """Build ``spec`` from ``registry``; ``defaults`` fill arguments the spec does not set."""
    cfg = as_config(spec)
    cls = resolve_type(registry, cfg.pop("type"))
    return cls(**{**defaults, **cfg})


def build_model(cfg: ComponentCfg) -> nn.Module:
    """Build a model (or a bare backbone) from a config dict, e.g. ``Config.fromfile(path).model``."""
    cfg = as_config(cfg)
    type_ = cfg.pop("type")
    registry = MODELS
    if isinstance(type_, str) and MODELS.get(type_) is None and BACKBONES.get(type_) is not None:
        registry = BACKBONES
    return resolve_type(registry, type_)(**cfg)


def list_mixers() -> list[str]:
    """Names of the registered token mixers."""
    MIXERS.import_from_location()
    return sorted(MIXERS.module_dict)


def list_ffns() -> list[str]:
    """Names of the registered channel mixers."""
    FFNS.import_from_location()
    return sorted(FFNS.module_dict)
