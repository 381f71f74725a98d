"""Config loading: mmengine pure-Python configs, or YAML dumps of them read with a safe loader."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Config:
    """Load ``path`` (``.py`` or ``.yaml``/``.yml``) and apply dotted ``cfg_options`` overrides.

    ``custom_hooks`` may be a dict of named hook configs (how configs and overrides address a hook by
    name, not by list position); it becomes the Runner's list here, in the dict's order.
    An override replaces what it names: ``{"model.backbone.mixer": "linear_attention"}`` swaps the
    whole mixer config for that mixer with its defaults (a sub-dict is not merged into the old one).
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
    if cfg.get("custom_imports"):  # plugins registering extra components (YAML configs and overrides too)
        import_modules_from_strings(**cfg.custom_imports)
    return cfg

