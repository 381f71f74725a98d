"""Config loading: mmengine pure-Python configs, or YAML dumps of them read as bounded data.

Trust comes from the person at the command line, never from a file. A ``.py`` config is code (mmengine executes
it), so it may widen what configs can build: its ``trusted_type_prefixes = ["mypkg"]`` and the modules of its
``custom_imports`` join the allow-list (:mod:`visionmix.allowlist`). A YAML config is data: it cannot widen
anything (those keys in a YAML file are refused), its size and alias expansion are bounded
(:mod:`visionmix.safe_yaml`), and every string ``type`` in it must be a registered name or an allowed class.
``--cfg-options`` come from the user, so they may widen trust as a ``.py`` config does. Classes given as objects
(pure-Python configs) need nothing.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from . import safe_yaml
from .allowlist import trust_type_prefixes, user_trusts
from .components import register_all_modules
from .config_values import check_values
from .registry import (UnknownComponentError, UntrustedTypeError, all_registries, import_trusted, lookup, parse_spec,
                       refusal, registered_allowed)

TYPE_KEYS = ("type", "ema_type", "constructor")  # strings mmengine looks up (EMAHook builds its ema_type)
SPEC_KEYS = ("backbone", "mixer", "ffn", "diffusion")  # a string here is a whole spec, "name:key=value"
SCOPE_KEYS = ("default_scope", "_scope_")  # mmengine imports "<scope>.registry" for a scope it does not know
TRUST_KEYS = ("trusted_type_prefixes", "custom_imports")  # what widens the allow-list


class ConfigError(ValueError):
    """A config key, argument or type its component does not accept; the first line says which and where."""


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Config:
    """Load ``path`` (``.py`` or ``.yaml``/``.yml``) and apply dotted ``cfg_options`` overrides.

    ``custom_hooks`` may be a dict of named hook configs (how configs and overrides address a hook by
    name, not by list position); it becomes the Runner's list here, in the dict's order.
    An override replaces what it names: ``{"model.backbone.mixer": "linear_attention"}`` swaps the
    whole mixer config for that mixer with its defaults (a sub-dict is not merged into the old one).

    Trust is widened only by a ``.py`` config's own ``trusted_type_prefixes`` / ``custom_imports`` and by those in
    ``cfg_options``; then every string type is checked (:func:`check_types`) before anything imports it, and sizes,
    counts and steps are checked for range (:func:`visionmix.config_values.check_values`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path.resolve()}")
    if path.suffix in (".yaml", ".yml"):
        cfg, vouched = _yaml_config(path), {}
    else:
        cfg = _python_config(path)
        vouched = {key: cfg.get(key) for key in TRUST_KEYS}
    from_command_line = Config()  # the overrides of trust keys, dotted or whole (custom_imports.imports=[...])
    for key, value in (cfg_options or {}).items():
        if key.split(".")[0] in TRUST_KEYS:
            _override(from_command_line, key, value)
    vouched.update({key: from_command_line[key] for key in TRUST_KEYS if key in from_command_line})
    for key, value in (cfg_options or {}).items():
        _override(cfg, key, value)
    if isinstance(cfg.get("custom_hooks"), Mapping):
        # configs name their hooks (custom_hooks.ema.momentum=...), the Runner wants a list
        cfg.custom_hooks = list(cfg.custom_hooks.values())
    trust(vouched)
    check_types(cfg)
    check_values(cfg)
    return cfg


def _override(cfg: Config, key: str, value: Any) -> None:
    """One ``--cfg-options`` pair; a key that does not fit the config's structure names itself."""
    try:
        cfg.merge_from_dict({key: value})
    except (TypeError, KeyError, IndexError, AttributeError) as err:
        detail = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise ConfigError(f"--cfg-options {key}: the config has no place for it ({detail}); a list is addressed "
                          "by index (custom_hooks.0.interval=...)") from None


def _yaml_config(path: Path) -> Config:
    try:
        data = safe_yaml.load_file(path) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a YAML config must be a mapping at the top level")
    widening = [key for key in TRUST_KEYS if key in data]
    if widening:
        raise ConfigError(f"{path}: {' and '.join(widening)} in a YAML config: a data file cannot widen what "
                          f"configs may build; pass it on the command line (--cfg-options {widening[0]}=...) or "
                          "use a .py config, which is code")
    return Config(data, filename=str(path))


def _python_config(path: Path) -> Config:
    try:
        return Config.fromfile(str(path))
    except SyntaxError as err:  # mmengine re-raises it without naming the file
        line = f", line {err.lineno}" if err.lineno else ""
        raise ConfigError(f"{path}{line}: Python syntax error in the config: {err.msg}") from None


def trust(vouched: Mapping[str, Any]) -> None:
    """Trust what the user vouched for (``trusted_type_prefixes`` and ``custom_imports`` of a ``.py`` config or the
    command line), then import the ``custom_imports`` plugins so that they register their components."""
    prefixes = vouched.get("trusted_type_prefixes") or []
    if isinstance(prefixes, str) or not all(isinstance(p, str) for p in prefixes):
        raise ConfigError(f"trusted_type_prefixes must be a list of strings, got {prefixes!r}")
    imports_cfg = vouched.get("custom_imports") or {}
    if not isinstance(imports_cfg, Mapping):
        raise ConfigError(f"custom_imports must be a dict(imports=[...]), got {imports_cfg!r}")
    imports = imports_cfg.get("imports") or []
    imports = [imports] if isinstance(imports, str) else list(imports)
    trust_type_prefixes(list(prefixes) + imports)
    if imports:
        import_modules_from_strings(**imports_cfg)


def check_types(cfg: Config) -> None:
    """Refuse every string type that is neither a registered name nor an allowed class.

    Walks the whole config (any dict's ``type``, ``ema_type``, ``constructor``, string component specs and
    registry scopes), so nothing mmengine or visionmix resolves later can import or call a foreign object.
    """
    register_all_modules()  # names registered anywhere in visionmix are known before any is looked up
    registries = all_registries()
    scopes = {reg.scope for reg in registries}
    for where, name, key in _type_strings(cfg, ""):
        if key in SCOPE_KEYS:
            if name not in scopes and not user_trusts(name):
                raise ConfigError(f"scope {name!r} at {where} is not allowed: registered scopes are "
                                  f"{', '.join(sorted(scopes))} (or trust it: --cfg-options "
                                  f"trusted_type_prefixes=\"['{name}']\")")
            continue
        found = [obj for reg in registries if (obj := lookup(reg, name)) is not None]
        if found:
            refused = next((obj for obj in found if not registered_allowed(obj)), None)
            if refused is not None:
                raise ConfigError(refusal(name, where, refused))
            continue
        if "." not in name:
            names = {n for reg in registries for n in reg.module_dict}
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown type {name!r} at {where}{hint}")
        try:
            import_trusted(name, where)
        except (UntrustedTypeError, UnknownComponentError) as err:
            raise ConfigError(str(err)) from None


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
