"""The model zoo: ``zoo:NAME`` names a row of ``visionmix/zoo/model_zoo.yml``; this module finds, verifies and
loads its weights into the model its config builds.

    model, info = load_pretrained("dit_xl2_in256")                 # built, verified, converted, eval mode
    model, info = load_model("zoo:dit_xl2_in256")                  # what the tools call: zoo names ...
    model, info = load_model("work_dirs/x/iter_400.pth", "cfg.py") # ... or a local checkpoint and its config
    load_from = "zoo:dit_xl2_in256"                                # in a training config (mmengine scheme)

Contracts:

- A row has at least ``config`` and ``weights``. ``config`` is relative to the repository root; it resolves to
  the checkout's ``configs/`` when this package runs from one, else to the copy installed as
  ``visionmix/configs/``. Relative ``weights`` are files beside the table (for the packaged table: the installed
  ``visionmix/zoo/`` folder); a URL is downloaded once, with torch.hub, into
  ``torch.hub.get_dir()/checkpoints/visionmix/<file>``, ``<file>`` being the row's ``filename`` or else the URL's
  basename. ``VISIONMIX_ZOO_MIRROR`` (a folder or a ``file://`` / ``http(s)://`` base) replaces the URL's
  location: ``<file>`` is fetched from there.
- Integrity (:mod:`visionmix.zoo_cache`): a file is used only after passing every check: its hash (a pinned
  ``sha256``, checked once per process; else the hash recorded for it), reading it safely (below), converting it,
  and, for an unpinned row loaded with its own config, fitting the model. A download is checked under a temporary
  name in the cache and renamed only when it passed, so a bad download leaves nothing in the cache. An unpinned
  row (``sha256: null``: official files nobody could hash offline) is trusted on first use: its hash is recorded in
  ``<file>.sha256`` (and printed once) only after the file passed, and later uses and downloads are checked against
  that record. A cached file that fails is an error, never silently downloaded again in the same call: it is
  deleted and the message names the paths deleted. Failing its pinned hash, it is downloaded afresh by the next run;
  failing its recorded hash, the record stays (the next download is checked against it; the message names the
  record to delete when the upstream file changed on purpose); refused when read or converted, its record goes too.
  Files shipped beside the table are checked the same way (the digits rows are pinned) but never deleted: the
  message says how to restore them. A URL or mirror that fails is a one-line :class:`DownloadError` naming the
  URL tried (and ``VISIONMIX_ZOO_MIRROR`` when set).
- Loading never runs code from a file: safetensors, or ``torch.load(weights_only=True)`` with exactly
  ``visionmix.converters.ALLOWED_CLASSES`` allowed (``argparse.Namespace``: the DiT-family training scripts pickle
  their ``args`` beside the weights); see :func:`visionmix.converters.load_official`.
- A row with a ``converter`` goes through ``visionmix.converters.convert(converter, checkpoint)``; the state dict
  it returns (or our own weights, ``converter: null``) is keyed like ``DiffusionModel.state_dict()``
  (``backbone.*``); backbone-level keys are accepted and prefixed. Loading is strict.

This module imports torch only inside the functions that load: listing the table stays cheap. The ``zoo:``
checkpoint scheme is registered with mmengine by :mod:`visionmix.engine.checkpoint`.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from . import safe_yaml, zoo_cache
# the cache's public names stay importable from here, where they always were (and _VERIFIED, which tests clear)
from .zoo_cache import (_VERIFIED, MIRROR_ENV, DownloadError, HashMismatchError, ZooError, cache_dir,  # noqa: F401
                        file_name, sha256_of)

PREFIX = "zoo:"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
TABLE = PACKAGE_DIR / "zoo" / "model_zoo.yml"


class UnknownModelError(ZooError, LookupError):
    """A zoo name that is not in the table."""


def table_path() -> Path:
    """The packaged model-zoo table."""
    return TABLE


def _models(table: str | Path | None) -> tuple[dict, Path]:
    path = Path(table) if table else table_path()
    if not path.is_file():
        raise FileNotFoundError(f"model-zoo table not found: {path}")
    data = safe_yaml.load_file(path) or {}
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ZooError(f"{path}: expected a top-level 'models:' mapping of zoo names to rows")
    return models, path


def list_models(table: str | Path | None = None) -> list[str]:
    """The zoo names, sorted."""
    return sorted(_models(table)[0])


def model_info(name: str, table: str | Path | None = None) -> dict:
    """A copy of ``name``'s row (``zoo:`` prefix optional) with ``name`` and ``table`` (the table's path) added."""
    models, path = _models(table)
    name = name.removeprefix(PREFIX)
    if name not in models:
        close = difflib.get_close_matches(name, sorted(models), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownModelError(f"unknown zoo model {name!r}{hint}; known: {', '.join(sorted(models)) or 'none'} "
                                f"(table {path})")
    row = models[name]
    missing = [k for k in ("config", "weights") if not (isinstance(row, dict) and row.get(k))]
    if missing:
        raise ZooError(f"zoo row {name!r} in {path} lacks {' and '.join(missing)}: every row names a config file "
                       "and a weights URL or file")
    return {**row, "name": name, "table": str(path)}


def resolve_config(config: str | Path) -> Path:
    """A row's config path: absolute as given; else under the checkout's root, else the installed ``configs/``."""
    path = Path(config).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        inside = Path(*path.parts[1:]) if path.parts[0] == "configs" else path
        candidates = [PACKAGE_DIR / "configs" / inside]
        if (REPO_ROOT / "setup.py").is_file() and (REPO_ROOT / "configs").is_dir():
            candidates.insert(0, REPO_ROOT / path)  # a checkout: its configs are the ones being edited
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"zoo config {config} not found; looked at {', '.join(map(str, candidates))}")
    return found


def _obtain(row: Mapping, progress: bool = True,
            fit: Callable[[dict, Path], None] | None = None) -> tuple[Path, dict]:
    """Row ``row``'s weights file and its converted state dict (``fit(state, file)`` run on it too), read once
    and judged as a whole: a file that cannot be read, converted or fitted is refused as :mod:`visionmix.zoo_cache`
    describes, and an unpinned row's file is trusted only after passing."""
    from .converters import LayoutError
    from .checkpoint_io import CheckpointError

    def check(path: Path) -> dict:
        state = _model_state(read_weights(path), row)
        if fit is not None:
            fit(state, path)
        return state

    return zoo_cache.obtain(row, check, (CheckpointError, LayoutError, ZooError), progress)


def download(name: str, *, table: str | Path | None = None, progress: bool = True) -> Path:
    """The verified local weights file of zoo model ``name`` (downloaded into the cache when it is a URL); it was
    read and converted once, so an unpinned row's first download is recorded only when it is usable."""
    return _obtain(model_info(name, table), progress)[0]


def read_weights(path: str | Path) -> Any:
    """The contents of a weights file on the CPU without running code from it: ``.safetensors``, or
    ``torch.load(weights_only=True)`` allowing only ``visionmix.converters.ALLOWED_CLASSES``. A refused pickle is a
    :class:`~visionmix.checkpoint_io.CheckpointError` naming the class it wanted; so is a truncated or corrupt
    file (load_official's RuntimeError, of which CheckpointError is a subclass)."""
    from .converters import UnsafeCheckpointError, load_official
    from .checkpoint_io import CheckpointError

    try:
        return load_official(path)
    except UnsafeCheckpointError as err:
        raise CheckpointError(f"{err} (nothing from the file ran)") from None
    except RuntimeError as err:  # load_official's "not a readable checkpoint": one type for every bad file
        raise CheckpointError(str(err)) from err


def _model_state(obj: Any, row: Mapping) -> dict:
    """``obj`` converted when the row says so, as a ``DiffusionModel`` state dict."""
    from .checkpoint_io import CheckpointError, as_model_state

    if row.get("converter"):
        from . import converters  # torch and every source's layout: only when a row needs one

        obj = converters.convert(row["converter"], obj)
    try:
        return as_model_state(obj, f"zoo:{row['name']}'s weights file")
    except CheckpointError:
        raise ZooError(f"zoo:{row['name']}: the weights are a {type(obj).__name__}, not a state dict; the row "
                       "needs a converter") from None


def state_dict(name: str, *, table: str | Path | None = None, map_location: Any = None) -> dict:
    """Zoo model ``name``'s verified, converted weights keyed like ``DiffusionModel.state_dict()``, on the CPU
    unless ``map_location`` names a device (what the mmengine ``zoo:`` scheme returns)."""
    state = _obtain(model_info(name, table))[1]
    if map_location is None or callable(map_location) or str(map_location) == "cpu":
        return state  # read on the CPU; mmengine moves the tensors when it loads them into the model
    return {k: v.to(map_location) for k, v in state.items()}


def load_pretrained(name: str, *, device: Any = "cpu", cfg_options: Mapping | None = None,
                    table: str | Path | None = None, config: str | Path | None = None,
                    before_load: Callable[[Any], None] | None = None) -> tuple[Any, dict]:
    """Zoo model ``name`` built from its config (or ``config``, which overrides the row's) with the row's and then
    ``cfg_options`` applied, its verified weights loaded strictly, in eval mode on ``device``.

    ``before_load(model)`` runs on the built model before the weights are fetched (tools check their arguments
    there, before a long download). Returns ``(model, info)``: the row plus ``config_path`` and ``weights_path``."""
    from . import build_model
    from .config import load_config
    from .checkpoint_io import fit_state_dict

    row = model_info(name, table)
    config_path = Path(config) if config else resolve_config(row["config"])
    options = {**(row.get("cfg_options") or {}), **(cfg_options or {})}
    model = build_model(load_config(config_path, options).model)
    if before_load is not None:
        before_load(model)

    def fit(state: dict, path: Path) -> None:
        fit_state_dict(model, state, f"zoo:{row['name']} ({path})", str(config_path), strict=True)

    # Whether a misfit is the file's fault: not with the user's config or options (theirs to fix), nor for a pinned
    # file (its hash proves it is the row's file: the row's config is what changed); otherwise it is the only sign
    # that an unpinned download is the wrong file, so it is checked before that file is trusted.
    own = config is None and not cfg_options and zoo_cache.pinned_sha(row) is None
    weights, state = _obtain(row, fit=fit if own else None)
    if not own:
        fit(state, weights)
    return model.to(device).eval(), {**row, "config_path": str(config_path), "weights_path": str(weights)}


def load_model(checkpoint: str, config: str | Path | None = None, cfg_options: Mapping | None = None, *,
               device: Any = "cpu", table: str | Path | None = None,
               before_load: Callable[[Any], None] | None = None) -> tuple[Any, dict]:
    """The tools' one entry point: ``zoo:NAME`` (``config`` optional) or a local checkpoint with its config.

    A local training checkpoint loads its EMA weights (:func:`visionmix.checkpoint_io.load_weights`). Returns
    ``(model, info)`` in eval mode on ``device``; ``info`` has ``name`` (None for local files), ``config_path`` and
    ``weights_path``."""
    if str(checkpoint).startswith(PREFIX):
        return load_pretrained(str(checkpoint)[len(PREFIX):], device=device, cfg_options=cfg_options, table=table,
                               config=config, before_load=before_load)
    if config is None:
        raise ValueError(f"{checkpoint} is a local checkpoint: also name the config it was trained with "
                         f"(only {PREFIX}NAME models bring their own)")
    from . import build_model
    from .config import load_config
    from .checkpoint_io import load_weights

    model = build_model(load_config(config, cfg_options).model)
    if before_load is not None:
        before_load(model)
    load_weights(model, str(checkpoint), str(config))
    return model.to(device).eval(), {"name": None, "config_path": str(config),
                                     "weights_path": os.path.abspath(os.path.expanduser(str(checkpoint)))}
