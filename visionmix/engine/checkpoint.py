"""Checkpoint I/O that survives torch >= 2.6 and never leaves a half-written file.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine's local loader calls it
bare, so resuming an mmengine checkpoint (which pickles its message hub) fails. We register a local
loader that unpickles fully only files inside directories the user vouched for (their work dir and
an explicitly named resume / load_from file) and loads everything else with ``weights_only=True``.

``load_from = "zoo:NAME"`` loads a model-zoo row's verified, converted weights (:mod:`visionmix.hub`) through an
mmengine ``zoo:`` scheme registered here. :func:`load_weights` is how tools load a local checkpoint into a model
(the EMA weights of a training checkpoint; a short mismatch message naming the config it was trained with).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TRUSTED: set[Path] = set()
ZOO_PREFIX = "zoo:"
SHOWN_MISMATCHES = 5


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read (truncated, corrupt, or untrusted pickle)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model the config builds."""


def trust_path(path: str | Path) -> None:
    """Allow full unpickling of checkpoints at ``path`` (a file, or a directory and everything below)."""
    _TRUSTED.add(Path(path).expanduser().resolve())


def is_trusted(path: str | Path) -> bool:
    path = Path(path).expanduser().resolve()
    return any(path == root or root in path.parents for root in _TRUSTED)


def load_local_checkpoint(filename: str, map_location=None, mmap: bool = False) -> dict:
    """mmengine loader for local paths; clear errors for missing, truncated or untrusted files.

    ``mmap=True`` maps the tensors instead of reading them: cheap for looking at names and shapes."""
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path.resolve()}")
    trusted = is_trusted(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as err:
        if not trusted and "weights_only" in str(err):
            raise CheckpointError(
                f"{path} holds pickled objects beyond tensors and is outside the trusted work dirs; "
                "if you made it, pass it with --resume / load_from (which trusts it) or call "
                "visionmix.engine.trust_path on its folder"
            ) from err
        raise CheckpointError(f"checkpoint {path} is corrupt ({err}); nothing was overwritten") from err
    except (EOFError, RuntimeError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {err}); nothing was "
            "overwritten: resume from an earlier checkpoint in the same folder"
        ) from err


def shapes_of(state_dict: Mapping[str, torch.Tensor], strip: str = r"^module\.") -> dict[str, tuple[int, ...]]:
    """``name -> shape`` of a state dict's tensors (DDP's ``module.`` prefix removed)."""
    return {re.sub(strip, "", k): tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def trained_with(checkpoint: Mapping) -> str | None:
    """The config a checkpoint was trained with, from its ``meta`` (our ``config_file``, else mmengine's
    experiment name), with the backbone's type and size read from the config text mmengine stores."""
    meta = checkpoint.get("meta") or {}
    name = meta.get("config_file") or meta.get("experiment_name")
    if not name:
        return None
    try:
        from mmengine.config import Config

        backbone = Config.fromstring(meta["cfg"], ".py").model.backbone
    except Exception:  # noqa: BLE001 - the config text is a nicety; the name alone still helps
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
    """Load a local checkpoint into ``model``: for training checkpoints the EMA weights (mmengine stores them as
    ``state_dict``), DDP's ``module.`` prefix removed. The user named the file, so it may unpickle fully."""
    trust_path(path)
    try:
        checkpoint = load_local_checkpoint(path, map_location="cpu")
    except OSError as err:  # torch.load of a truncated zip can fail with a bare "[Errno 22]"
        if isinstance(err, FileNotFoundError):
            raise
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {err})") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    state = {k.removeprefix("module."): v for k, v in state.items()}
    origin = trained_with(checkpoint) if isinstance(checkpoint, dict) else None
    fit_state_dict(model, state, path, config, strict=False, origin=origin)


def load_from_zoo(filename: str, map_location: Any = None) -> dict:
    """mmengine loader for ``zoo:NAME``: the row's verified, converted state dict (downloaded once)."""
    from ..hub import state_dict

    return state_dict(filename[len(ZOO_PREFIX):], map_location=map_location)


def check_config_checkpoint(cfg) -> None:
    """Before the Runner exists: does ``cfg.load_from`` fit the model ``cfg`` builds? The checkpoint is
    memory-mapped and the model built on the meta device, so this costs neither memory nor initialisation
    (a ``zoo:`` name is downloaded and verified here, once, instead of after the Runner has started)."""
    if not cfg.get("load_from"):
        return
    from mmengine.registry import MODELS

    if str(cfg.load_from).startswith(ZOO_PREFIX):
        if cfg.get("resume"):
            raise CheckpointError(f"resume=True with load_from={cfg.load_from}: zoo weights start a new run and "
                                  "cannot be resumed; set resume=False (or resume from a checkpoint of your run)")
        checkpoint = load_from_zoo(cfg.load_from)
    else:
        checkpoint = load_local_checkpoint(cfg.load_from, map_location="cpu", mmap=True)
    try:
        with torch.device("meta"):
            shapes = shapes_of(MODELS.build(cfg.model).state_dict())
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: the Runner checks the real one
        return
    check_fits(shapes, checkpoint, cfg.load_from, strict=bool(cfg.get("resume")))


CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
CheckpointLoader.register_scheme(prefixes=ZOO_PREFIX, loader=load_from_zoo, force=True)
