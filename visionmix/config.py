"""Config loading: mmengine pure-Python configs, or YAML dumps of them read with a safe loader.

A string ``type`` anywhere in a config is data, never an import path to follow blindly (mmengine's
``Registry.get`` imports and returns any path, ``"os.system"`` included). It must be a registered name
(``"attention"``, ``"EMAHook"``) or a class under visionmix, torch.nn, torch.optim, mmengine, timm or
diffusers. A config extends that list with ``trusted_type_prefixes = ["mypkg."]``; the modules in its
``custom_imports`` are trusted too. Classes given as objects (pure-Python configs) need nothing.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from .registry import (UnknownComponentError, UntrustedTypeError, all_registries, import_trusted, is_trusted_path,
                       lookup, not_allowed, parse_spec, trust_type_prefixes)

TYPE_KEYS = ("type", "ema_type", "constructor")  # strings mmengine looks up (EMAHook builds its ema_type)
SPEC_KEYS = ("backbone", "mixer", "ffn", "diffusion")  # a string here is a whole spec, "name:key=value"
SCOPE_KEYS = ("default_scope", "_scope_")  # mmengine imports "<scope>.registry" for a scope it does not know


class ConfigError(ValueError):
    """A config key, argument or type its component does not accept; the first line says which and where."""


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Config:
    """Load ``path`` (``.py`` or ``.yaml``/``.yml``) and apply dotted ``cfg_options`` overrides.

    ``custom_hooks`` may be a dict of named hook configs (how configs and overrides address a hook by
    name, not by list position); it becomes the Runner's list here, in the dict's order.
    An override replaces what it names: ``{"model.backbone.mixer": "linear_attention"}`` swaps the
    whole mixer config for that mixer with its defaults (a sub-dict is not merged into the old one).

    String types (YAML, .py and overrides alike) are checked here (:func:`check_types`), after the config's
    ``custom_imports`` (trusted plugins that may register names) and before anything else imports them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path.resolve()}")
    if path.suffix in (".yaml", ".yml"):
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a YAML config must be a mapping at the top level")
        cfg = Config(data, filename=str(path))
    else:
        cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    if isinstance(cfg.get("custom_hooks"), Mapping):
        # configs name their hooks (custom_hooks.ema.momentum=...), the Runner wants a list
        cfg.custom_hooks = list(cfg.custom_hooks.values())
    trust_config(cfg)  # trusted_type_prefixes and the custom_imports modules
    if cfg.get("custom_imports"):  # plugins registering extra components (YAML configs and overrides too)
        import_modules_from_strings(**cfg.custom_imports)
    check_types(cfg)
    return cfg


def trust_config(cfg: Config) -> None:
    """Trust the packages the config itself vouches for: ``trusted_type_prefixes`` and ``custom_imports``."""
    imports = (cfg.get("custom_imports") or {}).get("imports") or []
    imports = [imports] if isinstance(imports, str) else list(imports)
    trust_type_prefixes(config_strings(cfg, "trusted_type_prefixes") + imports)


def check_types(cfg: Config) -> None:
    """Refuse every string type that is neither a registered name nor a class under a trusted package.

    Walks the whole config (any dict's ``type``, ``ema_type``, ``constructor``, string component specs and
    registry scopes), so nothing mmengine or visionmix resolves later can import an arbitrary module.
    """
    from . import engine, models  # noqa: F401  register visionmix's hooks and models first

    registries = all_registries()
    scopes = {reg.scope for reg in registries}
    for where, name, key in _type_strings(cfg, ""):
        if key in SCOPE_KEYS:
            if name not in scopes and not is_trusted_path(name):
                raise ConfigError(f"scope {name!r} at {where} is not allowed: registered scopes are "
                                  f"{', '.join(sorted(scopes))} (or add it to trusted_type_prefixes)")
            continue
        if any(lookup(reg, name) is not None for reg in registries):
            continue
        if "." not in name:
            names = {n for reg in registries for n in reg.module_dict}
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown type {name!r} at {where}{hint}")
        if not is_trusted_path(name):
            raise ConfigError(not_allowed(name, where))
        try:
            import_trusted(name)
        except (UntrustedTypeError, UnknownComponentError) as err:
            raise ConfigError(f"{err} (at {where})") from None


def config_strings(cfg: Config, key: str) -> list[str]:
    """A declaration like ``user_keys``: a list of strings, or a clear error."""
    value = cfg.get(key) or []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings, got {value!r}")
    return list(value)


def _type_strings(node: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """(place, string, key) for every type or scope named by a string anywhere under ``node``."""
    if isinstance(node, (Mapping, Config)):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key in TYPE_KEYS + SCOPE_KEYS and isinstance(value, str):
                yield (where or "top level") if key == "type" else here, value, key
            elif key in SPEC_KEYS and isinstance(value, str):
                try:
                    yield here, parse_spec(value)["type"], key
                except ValueError as err:
                    raise ConfigError(f"{here}: {err}") from None
            else:
                yield from _type_strings(value, here)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _type_strings(value, f"{where}[{i}]")
