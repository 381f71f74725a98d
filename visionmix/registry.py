"""Registries for every pluggable part, and the builders that read config dicts.

A config's ``type`` may be the class itself (pure-Python configs), a registered short name (``"attention"``)
or a dotted import path (what a YAML dump of such a config contains) to a class on the allow-list: a config
string is data, so it never imports or calls an arbitrary object (see :mod:`visionmix.allowlist`). A bare string or
class stands for that component with its defaults, so ``--cfg-options model.backbone.mixer=linear_attention``
is a complete mixer swap.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Mapping, Union

import torch.nn as nn
from mmengine.registry import Registry

from . import safe_yaml
from .allowlist import (UntrustedTypeError, allowed, importable, refusal,  # noqa: F401 - re-exported
                        trust_type_prefixes)
from .contract import ChannelMixer, TokenMixer, check_part_class


class ContractRegistry(Registry):
    """A registry whose entries obey a part contract (:mod:`visionmix.contract`), checked as each one registers."""

    def __init__(self, name: str, *, contract: type, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.contract = contract

    def _register_module(self, module: type, module_name: Any = None, force: bool = False) -> None:
        check_part_class(module, self.contract)
        super()._register_module(module, module_name, force)
        names = [module_name] if isinstance(module_name, str) else list(module_name or [module.__name__])
        module._registered_name = names[0]


MIXERS = ContractRegistry("token mixer", contract=TokenMixer, scope="visionmix", locations=["visionmix.mixers"])
FFNS = ContractRegistry("channel mixer (FFN)", contract=ChannelMixer, scope="visionmix",
                        locations=["visionmix.layers"])
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
        cfg[key.strip()] = safe_yaml.load(value.strip(), f"option {key.strip()!r} of {text!r}")
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


def all_registries() -> list[Registry]:
    """visionmix's registries and mmengine's root registries (with their children), for name look-ups."""
    from mmengine.registry import root

    found: dict[int, Registry] = {}
    todo = [MIXERS, FFNS, BACKBONES, MODELS, OBJECTIVES] + [v for v in vars(root).values() if isinstance(v, Registry)]
    while todo:
        reg = todo.pop()
        if id(reg) not in found:
            found[id(reg)] = reg
            todo.extend(reg.children.values())
    return list(found.values())


def lookup(registry: Registry, name: str) -> Any:
    """What ``name`` (or ``scope.name``) is registered as in ``registry`` or its ancestors; None, importing nothing."""
    registry.import_from_location()
    scope, key = registry.split_scope_key(name)
    if scope not in (None, registry.scope):
        return None
    reg: Registry | None = registry
    while reg is not None:
        if key in reg.module_dict:
            return reg.module_dict[key]
        reg = reg.parent if scope is None else None
    return None


def import_trusted(path: str, where: str = "") -> Any:
    """What a dotted path names, imported only from :data:`visionmix.allowlist.IMPORTABLE` packages (and those the
    user trusts) and returned only when :func:`visionmix.allowlist.allowed` says a config may build it: a class, or a
    registered function (a collate function), never a module attribute that hops to a foreign callable."""
    if not importable(path):
        raise UntrustedTypeError(refusal(path, where))
    from mmengine.utils import get_object_from_string  # the resolver Registry.get falls back to

    obj = get_object_from_string(path)
    if obj is None or inspect.ismodule(obj):
        raise UnknownComponentError(f"type {path!r}{' at ' + where if where else ''} names no class: nothing "
                                    "importable has that path")
    if not allowed(obj):
        raise UntrustedTypeError(refusal(path, where, obj))
    return obj


def registered_allowed(obj: Any) -> bool:
    """Whether a config may name ``obj`` by its registered name. Code the user runs registered everything outside
    mmengine (visionmix, plugins); mmengine's own entries must be on the allow-list (``ProfilerHook`` is not)."""
    home = getattr(obj, "__module__", "") or ""
    return not (home == "mmengine" or home.startswith("mmengine.")) or allowed(obj)


def resolve_type(registry: Registry, type_: Any) -> type:
    """Return the class a ``type`` entry denotes, or raise listing what ``registry`` knows.

    A string is a name registered in ``registry`` or a trusted dotted path; nothing else is imported.
    """
    if not isinstance(type_, str):
        if callable(type_):
            return type_
        raise TypeError(f"'type' must be a class or a name, got {type_!r}")
    found = lookup(registry, type_)
    if found is not None:
        if not registered_allowed(found):
            raise UntrustedTypeError(refusal(type_, obj=found))
        return found
    if "." in type_:
        return import_trusted(type_)
    known = ", ".join(sorted(registry.module_dict)) or "(none registered)"
    close = difflib.get_close_matches(type_, list(registry.module_dict), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownComponentError(
        f"unknown {registry.name} {type_!r}{hint}. Known {registry.name}s: {known}. "
        "A dotted import path (package.module.Class) also works."
    )


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
    """Build ``spec`` from ``registry``; ``defaults`` fill arguments the spec does not set. A mixer or FFN must obey
    its registry's contract: a dotted path is checked here, a registered name was checked when it registered."""
    cfg = as_config(spec)
    cls = resolve_type(registry, cfg.pop("type"))
    contract = getattr(registry, "contract", None)
    if contract is not None:
        check_part_class(cls, contract)
    check_options(registry, cls, cfg)
    return cls(**{**defaults, **cfg})


def build_model(cfg: ComponentCfg) -> nn.Module:
    """Build a model (or a bare backbone) from a config dict, e.g. ``Config.fromfile(path).model``."""
    cfg = as_config(cfg)
    type_ = cfg.pop("type")
    registry = MODELS
    if isinstance(type_, str) and lookup(MODELS, type_) is None and lookup(BACKBONES, type_) is not None:
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
