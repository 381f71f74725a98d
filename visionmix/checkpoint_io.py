"""Checkpoint files as data: reading one never runs code from it, and a fit report says how it meets a model.

Every local checkpoint is read with ``torch.load(weights_only=True)`` -- the restricted unpickler, which rebuilds
tensors, plain containers and (allowed here) the numpy arrays and scalars of a training checkpoint's RNG state --
or with safetensors. visionmix writes its training checkpoints in that form (see
:class:`~visionmix.engine.runner.VisionMixRunner`: the message hub and the config are stored as plain data), so
resuming needs nothing more. Full unpickling happens only for a file the user names on the command line with
``--trust-checkpoint`` (:func:`trust_path`); no config, work dir, checkpoint or zoo row can ask for it, and every
refusal names the flag. ``meta["config"]``, which mmengine's ``Runner.resume`` would execute as Python, is dropped on
reading; the stored config is read as data (:mod:`visionmix.stored_config`).

Any weights source becomes a ``DiffusionModel`` state dict (:func:`as_model_state`) or, for mmengine's loader and
EMA hook, ``{"state_dict": ..., "meta": ...}`` (:func:`as_training_checkpoint`). This module imports nothing of
visionmix above it: the zoo, the tools and the mmengine wiring (:mod:`visionmix.engine.checkpoint`) build on it.
"""
from __future__ import annotations

import contextlib
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from .stored_config import read_stored_config

_TRUSTED: set[Path] = set()
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
    return Path(path).expanduser().resolve() in _TRUSTED


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


def read_checkpoint(filename: str, map_location: Any = None, mmap: bool = False) -> dict:
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
                              "needs converting first: visionmix convert SOURCE IN OUT")
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


@dataclass
class Fit:
    """How a checkpoint's tensors meet a model's: names whose shapes differ, that the checkpoint lacks, that the
    model lacks (each in the model's or the checkpoint's order)."""

    wanted: dict[str, tuple[int, ...]]
    saved: dict[str, tuple[int, ...]]
    differ: list[str]
    missing: list[str]
    unexpected: list[str]

    @classmethod
    def of(cls, wanted: Mapping[str, Sequence[int]], saved: Mapping[str, Sequence[int]],
           optional: tuple[str, ...] = ()) -> "Fit":
        """``optional``: prefixes of model tensors a checkpoint may lack (counted neither missing nor fitting)."""
        wanted = {k: tuple(v) for k, v in wanted.items()}
        saved = {k: tuple(v) for k, v in saved.items()}
        return cls(wanted, saved, [k for k in wanted if k in saved and saved[k] != wanted[k]],
                   [k for k in wanted if k not in saved and not (optional and k.startswith(optional))],
                   [k for k in saved if k not in wanted])

    @property
    def perfect(self) -> bool:
        return not (self.differ or self.missing or self.unexpected)

    def summary(self) -> str:
        return (f"{len(self.differ)} of {len(self.wanted)} tensors differ in shape, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected")

    def examples(self, show: int) -> list[str]:
        """Up to ``show`` lines, shape differences first."""
        lines = [f"  {k}: checkpoint {self.saved[k]} vs model {self.wanted[k]}" for k in self.differ]
        lines += [f"  {k}: not in the checkpoint" for k in self.missing]
        lines += [f"  {k}: not in the model" for k in self.unexpected]
        return lines[:show]


def check_fits(model_shapes: Mapping[str, Sequence[int]], checkpoint: Mapping, filename: str, *,
               strict: bool, show: int = 3) -> str | None:
    """Compare a checkpoint's ``state_dict`` with the model's tensor shapes.

    ``strict`` (resuming): any differing shape, missing or unexpected tensor raises
    :class:`CheckpointMismatchError` with a few examples instead of one line per tensor. Otherwise (``load_from``,
    where fine-tuning may replace a head) it raises only when under half of the model's tensors can be loaded and
    returns a one-line summary of what will be skipped (None when everything fits).
    """
    fit = Fit.of(model_shapes, shapes_of(checkpoint.get("state_dict", checkpoint)))
    if fit.perfect:
        return None
    fitting = len(fit.wanted) - len(fit.differ) - len(fit.missing)
    if not strict and fitting >= len(fit.wanted) / 2:
        return f"load_from {filename}: {fit.summary()}; those keep their initial values"
    origin = trained_with(checkpoint)
    advice = (f"it was trained with {origin}; pass that config" if origin else "pass the config it was trained with")
    raise CheckpointMismatchError(f"checkpoint {filename} does not fit this config's model: {fit.summary()}, e.g.\n"
                                  + "\n".join(fit.examples(show)) + f"\n{advice}, or drop --resume / load_from")


def fit_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, config: str, *,
                   strict: bool, origin: str | None = None) -> None:
    """Load ``state`` into ``model`` after checking that every tensor fits; otherwise a
    :class:`CheckpointMismatchError` of a few lines: counts, the first mismatches with their shapes, and
    ``origin`` (the config the weights were trained with) when known. ``strict=False`` tolerates missing
    ``data_preprocessor`` tensors (training checkpoints may lack them); ``strict=True`` tolerates nothing."""
    fit = Fit.of(shapes_of(model.state_dict()), shapes_of(state), optional=() if strict else ("data_preprocessor",))
    if not fit.perfect:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit {config}: {fit.summary()}; "
            + (f"it was trained with {origin}" if origin else "pass the config it was trained with")
            + "\n" + "\n".join(fit.examples(SHOWN_MISMATCHES)))
    model.load_state_dict(dict(state), strict=strict)


def load_weights(model: torch.nn.Module, path: str, config: str) -> None:
    """Load a local checkpoint into ``model`` (read as data): for training checkpoints the EMA weights (mmengine
    stores them as ``state_dict``), else the plain or converted state dict the file holds."""
    checkpoint = read_checkpoint(path, map_location="cpu")
    origin = trained_with(checkpoint) if isinstance(checkpoint, dict) else None
    fit_state_dict(model, as_model_state(checkpoint, path), path, config, strict=False, origin=origin)
