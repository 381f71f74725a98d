"""Checkpoint I/O that survives torch >= 2.6 and never leaves a half-written file.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine's local loader calls it
bare, so resuming an mmengine checkpoint (which pickles its message hub) fails. We register a local
loader that unpickles fully only files inside directories the user vouched for (their work dir and
an explicitly named resume / load_from file) and loads everything else with ``weights_only=True``.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TRUSTED: set[Path] = set()


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read (truncated, corrupt, or untrusted pickle)."""


def trust_path(path: str | Path) -> None:
    """Allow full unpickling of checkpoints at ``path`` (a file, or a directory and everything below)."""
    _TRUSTED.add(Path(path).expanduser().resolve())


def is_trusted(path: str | Path) -> bool:
    path = Path(path).expanduser().resolve()
    return any(path == root or root in path.parents for root in _TRUSTED)


def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine loader for local paths; clear errors for missing, truncated or untrusted files."""
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path.resolve()}")
    trusted = is_trusted(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
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


CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
