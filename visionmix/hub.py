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
- Integrity: a pinned ``sha256`` is checked before the first use of the file in each process (a download is
  checked under a temporary name and renamed only when it matches, so a bad download leaves nothing in the
  cache). An unpinned row (``sha256: null``: official files nobody could hash offline) is trusted on first use:
  the download's hash is recorded in ``<file>.sha256`` and printed once, and every later use is checked against
  that record. A cached file that fails its check is an error, never silently downloaded again. Files shipped
  beside the table are checked when pinned (the digits rows are) and otherwise used as installed.
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
import hashlib
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlparse

import yaml

PREFIX = "zoo:"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
TABLE = PACKAGE_DIR / "zoo" / "model_zoo.yml"
MIRROR_ENV = "VISIONMIX_ZOO_MIRROR"
_VERIFIED: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, sha256) checked in this process


class ZooError(RuntimeError):
    """A zoo table, row or weights file that cannot be used as it is."""


class UnknownModelError(ZooError, LookupError):
    """A zoo name that is not in the table."""


class HashMismatchError(ZooError):
    """A weights file whose sha256 is not the one pinned or recorded for it."""


def table_path() -> Path:
    """The packaged model-zoo table."""
    return TABLE


def _models(table: str | Path | None) -> tuple[dict, Path]:
    path = Path(table) if table else table_path()
    if not path.is_file():
        raise FileNotFoundError(f"model-zoo table not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
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


def cache_dir() -> Path:
    """Where downloaded zoo weights live: ``torch.hub.get_dir()/checkpoints/visionmix``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / "visionmix"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_url(text: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def file_name(row: Mapping) -> str:
    """The name a URL row's file is cached and mirrored under: ``filename``, else the URL path's basename."""
    name = row.get("filename") or Path(unquote(urlparse(str(row["weights"])).path)).name
    if row.get("filename") and Path(name).name != name:  # a path would escape the cache folder
        raise ZooError(f"zoo row {row['name']!r}: filename must be a bare file name, got {name!r}")
    if not name or "." not in name:
        raise ZooError(f"zoo row {row['name']!r}: its URL {row['weights']} does not end in a file name; add "
                       "'filename: <name>.pt' to the row")
    return name


def _mirrored(url: str, name: str) -> str:
    """``url``, or the file ``name`` under ``$VISIONMIX_ZOO_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    if _is_url(mirror):
        return mirror.rstrip("/") + "/" + name
    local = Path(mirror).expanduser() / name
    if not local.is_file():
        raise FileNotFoundError(f"{MIRROR_ENV}={mirror} has no {name} (wanted for {url}); copy the file there "
                                f"or unset {MIRROR_ENV} to download from the original location")
    return local.resolve().as_uri()


def _pinned(row: Mapping) -> str | None:
    value = row.get("sha256")
    if value is None:
        return None
    value = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ZooError(f"zoo row {row['name']!r}: sha256 must be 64 hex digits or null, got {row['sha256']!r}")
    return value


def _verify(path: Path, expected: str, source: str) -> None:
    """Check ``path`` against ``expected`` once per process (again if the file changed)."""
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns, expected)
    if _VERIFIED.get(str(path)) == key:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise HashMismatchError(
            f"{path} has sha256 {actual}, expected {expected} ({source}); the cached file is corrupt or was "
            "replaced: delete it and run again to download it afresh")
    _VERIFIED[str(path)] = key


def _record_first_use(path: Path, digest: str, row: Mapping) -> None:
    """Trust on first use: write ``<file>.sha256`` and say once that the row is not pinned."""
    record = path.with_name(path.name + ".sha256")
    temp = record.with_name(f".{record.name}.{uuid.uuid4().hex}.partial")
    temp.write_text(f"{digest}  {path.name}\n")
    os.replace(temp, record)
    print(f"zoo:{row['name']}: {path.name} has sha256 {digest}; the row in {row['table']} is not pinned, so this "
          f"first download is trusted and recorded in {record} (later uses are checked against it; pin it in the "
          f"table with sha256: {digest})", file=sys.stderr)


def _fetch(row: Mapping, progress: bool = True) -> Path:
    weights, pinned = str(row["weights"]), _pinned(row)
    if not _is_url(weights):
        path = Path(weights).expanduser()
        path = path if path.is_absolute() else Path(row["table"]).parent / path
        if not path.is_file():
            why = (f"the row is {row['status']}: `python tools/zoo.py reproduce {row['name']}` trains and exports it"
                   if row.get("status") else "is the package installed with its zoo files?")
            raise FileNotFoundError(f"zoo:{row['name']}: weights file {path} not found ({why})")
        if pinned:
            _verify(path, pinned, f"pinned for zoo:{row['name']}")
        return path
    name = file_name(row)
    url, target = _mirrored(weights, name), cache_dir() / name
    record = target.with_name(target.name + ".sha256")
    if target.is_file():
        if pinned:
            _verify(target, pinned, f"pinned for zoo:{row['name']} in {row['table']}")
        elif record.is_file():
            _verify(target, record.read_text().split()[0], f"recorded at its first download in {record}")
        else:  # cached by someone else (e.g. torch.hub itself): this is our first use of it
            _record_first_use(target, sha256_of(target), row)
        return target
    import torch.hub

    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        torch.hub.download_url_to_file(url, str(temp), progress=progress)
        actual = sha256_of(temp)
        if pinned and actual != pinned:
            raise HashMismatchError(f"zoo:{row['name']}: {url} has sha256 {actual}, expected {pinned} (pinned in "
                                    f"{row['table']}); nothing was cached. A changed upstream file or a wrong "
                                    f"mirror ({MIRROR_ENV}) are the usual causes")
        if not pinned:
            _record_first_use(target, actual, row)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    stat = target.stat()
    _VERIFIED[str(target)] = (stat.st_size, stat.st_mtime_ns, actual)
    return target


def download(name: str, *, table: str | Path | None = None, progress: bool = True) -> Path:
    """The verified local weights file of zoo model ``name`` (downloaded into the cache when it is a URL)."""
    return _fetch(model_info(name, table), progress)


def read_weights(path: str | Path) -> Any:
    """The contents of a weights file on the CPU without running code from it: ``.safetensors``, or
    ``torch.load(weights_only=True)`` allowing only ``visionmix.converters.ALLOWED_CLASSES``. A refused pickle is a
    :class:`~visionmix.engine.checkpoint.CheckpointError` naming the class it wanted."""
    from .converters import UnsafeCheckpointError, load_official
    from .engine.checkpoint import CheckpointError

    try:
        return load_official(path)
    except UnsafeCheckpointError as err:
        raise CheckpointError(f"{err} (nothing from the file ran)") from None


def _model_state(obj: Any, row: Mapping) -> dict:
    """``obj`` converted when the row says so, as a ``DiffusionModel`` state dict."""
    if row.get("converter"):
        from . import converters  # torch and every source's layout: only when a row needs one

        obj = converters.convert(row["converter"], obj)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ZooError(f"zoo:{row['name']}: the weights are a {type(obj).__name__}, not a state dict; the row "
                       "needs a converter")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if state and not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}  # a denoiser's own state dict
    return state


def state_dict(name: str, *, table: str | Path | None = None, map_location: Any = None) -> dict:
    """Zoo model ``name``'s verified, converted weights keyed like ``DiffusionModel.state_dict()``, on the CPU
    unless ``map_location`` names a device (what the mmengine ``zoo:`` scheme returns)."""
    row = model_info(name, table)
    state = _model_state(read_weights(_fetch(row)), row)
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
    from .engine.checkpoint import fit_state_dict

    row = model_info(name, table)
    config_path = Path(config) if config else resolve_config(row["config"])
    options = {**(row.get("cfg_options") or {}), **(cfg_options or {})}
    model = build_model(load_config(config_path, options).model)
    if before_load is not None:
        before_load(model)
    weights = _fetch(row)
    fit_state_dict(model, _model_state(read_weights(weights), row), f"zoo:{row['name']} ({weights})",
                   str(config_path), strict=True)
    return model.to(device).eval(), {**row, "config_path": str(config_path), "weights_path": str(weights)}


def load_model(checkpoint: str, config: str | Path | None = None, cfg_options: Mapping | None = None, *,
               device: Any = "cpu", table: str | Path | None = None,
               before_load: Callable[[Any], None] | None = None) -> tuple[Any, dict]:
    """The tools' one entry point: ``zoo:NAME`` (``config`` optional) or a local checkpoint with its config.

    A local training checkpoint loads its EMA weights (:func:`visionmix.engine.checkpoint.load_weights`). Returns
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
    from .engine.checkpoint import load_weights

    model = build_model(load_config(config, cfg_options).model)
    if before_load is not None:
        before_load(model)
    load_weights(model, str(checkpoint), str(config))
    return model.to(device).eval(), {"name": None, "config_path": str(config),
                                     "weights_path": os.path.abspath(os.path.expanduser(str(checkpoint)))}
