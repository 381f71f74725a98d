"""Checkpoints are data: reading one never runs code from it.

Every local checkpoint is read with ``torch.load(weights_only=True)`` -- the restricted unpickler, which rebuilds
tensors, plain containers and (allowed here) the numpy arrays and scalars of a training checkpoint's RNG state --
or with safetensors. visionmix writes its training checkpoints in that form (see
:class:`~visionmix.engine.runner.VisionMixRunner`: the message hub and the config are stored as plain data), so
resuming needs nothing more. Full unpickling happens only for a file the user names on the command line with
``--trust-checkpoint`` (:func:`trust_path`); no config, work dir, checkpoint or zoo row can ask for it, and every
refusal names the flag. ``meta["config"]``, which mmengine's ``Runner.resume`` would execute as Python, is dropped on
reading; the stored config is read as data (:mod:`visionmix.engine.stored_config`).

``load_from`` accepts a training checkpoint, a plain or converted state dict (``tools/convert.py`` output,
``.safetensors`` too) and ``zoo:NAME`` (through an mmengine ``zoo:`` scheme registered here): all become
``{"state_dict": <DiffusionModel keys>, "meta": ...}`` (:func:`as_training_checkpoint`), which is what mmengine's
EMA hook and loader expect. :func:`load_weights` is how tools load a local checkpoint into a model.
"""
from __future__ import annotations

import contextlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .stored_config import read_stored_config

_TRUSTED: set[Path] = set()
ZOO_PREFIX = "zoo:"
TRUST_FLAG = "--trust-checkpoint"
SHOWN_MISMATCHES = 5


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read (truncated, corrupt, or holding objects beyond data)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model the config builds."""


def trust_path(path: str | Path) -> None:
    """Allow full unpickling of the checkpoint at ``path``. For the command line's ``--trust-checkpoint`` only: it
    runs whatever code the file holds."""
    _TRUSTED.add(Path(path).expanduser().resolve())


def is_trusted(path: str | Path) -> bool:
    path = Path(path).expanduser().resolve()
    return any(path == root or root in path.parents for root in _TRUSTED)


def data_classes() -> list[Any]:
    """What a visionmix training checkpoint holds besides tensors and plain containers: numpy arrays, dtypes and
    scalars (numpy's and Python's RNG states, the message hub's histories). Rebuilding them runs no code."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFD"}
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *sorted(dtypes, key=str)]


@contextlib.contextmanager
def _data_only() -> Iterator[None]:
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    with safe_globals(data_classes()) if safe_globals else contextlib.nullcontext():
        yield


def load_local_checkpoint(filename: str, map_location: Any = None, mmap: bool = False) -> dict:
    """Read a local checkpoint as data (see the module docstring); clear errors for a missing, truncated, corrupt
    or code-carrying file. ``mmap=True`` maps the tensors instead of reading them (cheap for names and shapes)."""
    path = Path(filename).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path.resolve()} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path.resolve()}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, map_location)
    trusted = is_trusted(path)
    try:
        with _data_only():
            checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as err:
        if not trusted and "weights only" in str(err).lower().replace("_", " "):
            raise CheckpointError(_refusal(path, str(err))) from None
        raise CheckpointError(f"checkpoint {path} is corrupt ({_first_line(err)}); nothing was overwritten") from None
    except (EOFError, RuntimeError, OSError, zipfile.BadZipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: "
                              f"{_first_line(err)}); nothing was overwritten: resume from an earlier checkpoint "
                              "in the same folder") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("meta"), dict):
        checkpoint["meta"].pop("config", None)  # mmengine's resume would execute this Python text
    return checkpoint


def _refusal(path: Path, text: str) -> str:
    found = re.search(r"GLOBAL\s+([\w.]+)", text)
    what = f"the class/function {found.group(1)}" if found else "objects beyond tensors, containers and arrays"
    return (f"{path} holds {what}; checkpoints are read as data, so it was not loaded (nothing from it ran). If you "
            f"made this file yourself and trust it, pass {TRUST_FLAG} (full unpickling runs any code inside it), or "
            "re-save just its tensors (torch.save(checkpoint['state_dict'], ...))")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _read_safetensors(path: Path, map_location: Any) -> dict:
    from safetensors.torch import load_file

    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for a bad header or short file
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_first_line(err)})") from None


def shapes_of(state_dict: Mapping[str, torch.Tensor], strip: str = r"^module\.") -> dict[str, tuple[int, ...]]:
    """``name -> shape`` of a state dict's tensors (DDP's ``module.`` prefix removed)."""
    return {re.sub(strip, "", k): tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def as_model_state(obj: Any, source: str) -> dict:
    """A loaded checkpoint as a ``DiffusionModel`` state dict: a training checkpoint's ``state_dict`` (the EMA
    weights), or a plain / converted state dict; DDP's ``module.`` removed, backbone-level keys prefixed."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no state dict (a mapping of names to tensors); an official checkpoint "
                              "needs converting first: tools/convert.py SOURCE IN OUT")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if state and not any(k.startswith(("backbone.", "data_preprocessor.")) for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}  # a denoiser's own state dict
    return state


def as_training_checkpoint(checkpoint: Any, source: str) -> dict:
    """What mmengine's loader and EMA hook expect of ``load_from``: ``{"state_dict": ..., "meta": ...}``, whatever
    the source wrote (a training checkpoint passes unchanged)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), Mapping) \
            and isinstance(checkpoint.get("meta"), dict):
        return checkpoint
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) and isinstance(checkpoint.get("meta"), dict) else {}
    return {"state_dict": as_model_state(checkpoint, source), "meta": meta}


def trained_with(checkpoint: Mapping) -> str | None:
    """The config a checkpoint was trained with, from its ``meta`` (our ``config_file``, else mmengine's
    experiment name), with the backbone's type and size read from the stored config (as data)."""
    meta = checkpoint.get("meta") or {}
    name = meta.get("config_file") or meta.get("experiment_name")
    if not name:
        return None
    model = (read_stored_config(meta) or {}).get("model")
    backbone = model.get("backbone") if isinstance(model, dict) else None
    if not isinstance(backbone, dict):
        return name
    sizes = ", ".join(f"{k}={backbone[k]}" for k in ("hidden_size", "depth", "patch_size", "input_size")
                      if k in backbone)
    kind = str(backbone.get("type", "?")).rsplit(".", 1)[-1].strip("'>")
    mixer = backbone.get("mixer", {}).get("type") if isinstance(backbone.get("mixer"), Mapping) else None
    kind += f" with {str(mixer).rsplit('.', 1)[-1]}" if mixer else ""
    return f"{name} ({kind}{': ' + sizes if sizes else ''})"


def check_fits(model_shapes: Mapping[str, Sequence[int]], checkpoint: Mapping, filename: str, *,
               strict: bool, show: int = 3) -> str | None:
    """Compare a checkpoint's ``state_dict`` with the model's tensor shapes.

    ``strict`` (resuming): any differing shape, missing or unexpected tensor raises
    :class:`CheckpointMismatchError` with a few examples instead of one line per tensor. Otherwise (``load_from``,
    where fine-tuning may replace a head) it raises only when under half of the model's tensors can be loaded and
    returns a one-line summary of what will be skipped (None when everything fits).
    """
    saved = shapes_of(checkpoint.get("state_dict", checkpoint))
    differ = [k for k in model_shapes if k in saved and tuple(saved[k]) != tuple(model_shapes[k])]
    missing = [k for k in model_shapes if k not in saved]
    unexpected = [k for k in saved if k not in model_shapes]
    if not (differ or missing or unexpected):
        return None
    summary = (f"{len(differ)} of {len(model_shapes)} tensors differ in shape, {len(missing)} missing, "
               f"{len(unexpected)} unexpected")
    fitting = len(model_shapes) - len(differ) - len(missing)
    if not strict and fitting >= len(model_shapes) / 2:
        return f"load_from {filename}: {summary}; those keep their initial values"
    examples = [f"  {k}: checkpoint {tuple(saved[k])} vs model {tuple(model_shapes[k])}" for k in differ[:show]]
    examples += [f"  {k}: not in the checkpoint" for k in missing[:show - len(examples)]]
    examples += [f"  {k}: not in the model" for k in unexpected[:show - len(examples)]]
    origin = trained_with(checkpoint)
    advice = (f"it was trained with {origin}; pass that config" if origin else "pass the config it was trained with")
    raise CheckpointMismatchError(f"checkpoint {filename} does not fit this config's model: {summary}, e.g.\n"
                                  + "\n".join(examples) + f"\n{advice}, or drop --resume / load_from")


def fit_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, config: str, *,
                   strict: bool, origin: str | None = None) -> None:
    """Load ``state`` into ``model`` after checking that every tensor fits; otherwise a
    :class:`CheckpointMismatchError` of a few lines: counts, the first mismatches with their shapes, and
    ``origin`` (the config the weights were trained with) when known. ``strict=False`` tolerates missing
    ``data_preprocessor`` tensors (training checkpoints may lack them); ``strict=True`` tolerates nothing."""
    saved, wanted = shapes_of(state), shapes_of(model.state_dict())
    differ = [k for k in wanted if k in saved and saved[k] != wanted[k]]
    missing = [k for k in wanted if k not in saved and (strict or not k.startswith("data_preprocessor"))]
    unexpected = [k for k in saved if k not in wanted]
    if differ or missing or unexpected:
        examples = [f"  {k}: checkpoint {saved[k]} vs model {wanted[k]}" for k in differ]
        examples += [f"  {k}: not in the checkpoint" for k in missing]
        examples += [f"  {k}: not in the model" for k in unexpected]
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit {config}: {len(differ)} of {len(wanted)} tensors differ in shape, "
            f"{len(missing)} missing, {len(unexpected)} unexpected; "
            + (f"it was trained with {origin}" if origin else "pass the config it was trained with")
            + "\n" + "\n".join(examples[:SHOWN_MISMATCHES]))
    model.load_state_dict(dict(state), strict=strict)


def load_weights(model: torch.nn.Module, path: str, config: str) -> None:
    """Load a local checkpoint into ``model`` (read as data): for training checkpoints the EMA weights (mmengine
    stores them as ``state_dict``), else the plain or converted state dict the file holds."""
    checkpoint = load_local_checkpoint(path, map_location="cpu")
    origin = trained_with(checkpoint) if isinstance(checkpoint, dict) else None
    fit_state_dict(model, as_model_state(checkpoint, path), path, config, strict=False, origin=origin)


def load_from_zoo(filename: str, map_location: Any = None) -> dict:
    """mmengine loader for ``zoo:NAME``: the row's verified, converted weights as a training checkpoint's fields."""
    from ..hub import state_dict

    return {"state_dict": state_dict(filename[len(ZOO_PREFIX):], map_location=map_location),
            "meta": {"zoo": filename[len(ZOO_PREFIX):]}}


def check_config_checkpoint(cfg: Any) -> None:
    """Before the Runner exists: does ``cfg.load_from`` fit the model ``cfg`` builds? The checkpoint is
    memory-mapped and the model built on the meta device, so this costs neither memory nor initialisation
    (a ``zoo:`` name is downloaded and verified here, once, instead of after the Runner has started)."""
    if not cfg.get("load_from"):
        return
    from mmengine.registry import MODELS

    source = str(cfg.load_from)
    if source.startswith(ZOO_PREFIX):
        if cfg.get("resume"):
            raise CheckpointError(f"resume=True with load_from={cfg.load_from}: zoo weights start a new run and "
                                  "cannot be resumed; set resume=False (or resume from a checkpoint of your run)")
        checkpoint = load_from_zoo(source)
    else:
        local = "://" not in source
        checkpoint = (load_local_checkpoint(source, map_location="cpu", mmap=not source.endswith(".safetensors"))
                      if local else CheckpointLoader.load_checkpoint(source, map_location="cpu"))
        if not cfg.get("resume"):
            checkpoint = as_training_checkpoint(checkpoint, source)
    try:
        with torch.device("meta"):
            shapes = shapes_of(MODELS.build(cfg.model).state_dict())
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: the Runner checks the real one
        return
    check_fits(shapes, checkpoint, source, strict=bool(cfg.get("resume")))


def load_from_url(filename: str, map_location: Any = None) -> dict:
    """mmengine loader for ``http(s)://`` ``load_from``: downloaded once into torch.hub's checkpoint cache, then read
    as data like any local file (mmengine's own loader leaves that to ``torch.load``'s default)."""
    import torch.hub
    from urllib.parse import unquote, urlparse

    name = Path(unquote(urlparse(filename).path)).name or "checkpoint.pth"
    target = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(filename, str(target), progress=False)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"load_from={filename}: could not download it ({_first_line(err)})") from None
    return load_local_checkpoint(str(target), map_location=map_location)


def refuse_remote(filename: str, map_location: Any = None) -> dict:
    """mmengine's other remote schemes (pavi, s3, torchvision, open-mmlab, ...) read with loaders visionmix does not
    control: refused."""
    raise CheckpointError(f"load_from={filename}: visionmix reads checkpoints from local files, http(s) URLs and "
                          "zoo:NAME; download the file and pass its local path")


CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
CheckpointLoader.register_scheme(prefixes=ZOO_PREFIX, loader=load_from_zoo, force=True)
CheckpointLoader.register_scheme(prefixes=("http://", "https://"), loader=load_from_url, force=True)
CheckpointLoader.register_scheme(prefixes=("pavi://", "modelzoo://", "torchvision://", "open-mmlab://",
                                           "openmmlab://", "mmcls://", r"(\S+\:)?s3://", r"(\S+\:)?petrel://"),
                                 loader=refuse_remote, force=True)
