"""Registries for every pluggable part, and the builders that read config dicts.

A config's ``type`` may be the class itself (pure-Python configs), a dotted import path (what a YAML
dump of such a config contains), or a registered short name (``"attention"``). A bare string or class
stands for that component with its defaults, so ``--cfg-options model.backbone.mixer=linear_attention``
is a complete mixer swap.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Mapping, Union

import torch.nn as nn
import yaml
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


def parse_spec(text: str) -> dict:
    """``"name:key=value,key=value"`` -> ``dict(type="name", key=value, ...)`` (values read as YAML scalars).

    The one-string form of a component config, for command lines: ``retnet:decomposed=True``.
    """
    name, _, options = text.partition(":")
    cfg: dict[str, Any] = {"type": name.strip()}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad option {item!r} in {text!r}: write name:key=value,key=value")
        cfg[key.strip()] = yaml.safe_load(value.strip())
    return cfg


def as_config(spec: ComponentCfg) -> dict:
    """Normalise a component spec (a name, ``"name:key=value,..."``, a class or a dict) to a fresh dict."""
    if isinstance(spec, str):
        return parse_spec(spec)
    if isinstance(spec, type):
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


# arguments every scaffold passes to its parts: not "options" a user sets in a config
CONTRACT_ARGS = ("dim", "num_heads", "layer_id", "num_layers")


def check_options(registry: Registry, cls: type, options: Mapping[str, Any]) -> None:
    """Raise naming the component and the options it accepts when ``options`` has one it does not."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [key for key in options if key not in params]
    if unknown:
        accepted = [name for name in params if name not in CONTRACT_ARGS and name != "self"]
        hints = {key: difflib.get_close_matches(key, accepted, n=1) for key in unknown}
        hint = "".join(f" (did you mean {h[0]!r} for {k!r}?)" for k, h in hints.items() if h)
        raise TypeError(f"{registry.name} {getattr(cls, '__name__', cls)!r} has no option "
                        f"{', '.join(map(repr, unknown))}{hint}; it accepts: {', '.join(accepted) or '(none)'}")


def build(registry: Registry, spec: ComponentCfg, **defaults: Any) -> Any:
    """Build ``spec`` from ``registry``; ``defaults`` fill arguments the spec does not set."""
    cfg = as_config(spec)
    cls = resolve_type(registry, cfg.pop("type"))
    check_options(registry, cls, cfg)
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
