"""Read an official checkpoint file without running code from it.

``.safetensors`` files hold tensors only. Pickles (``.pt`` / ``.pth``) are read with
``torch.load(weights_only=True)``, which rebuilds tensors and plain containers (dict, list, tuple, str,
numbers, None) and refuses every other class, with exactly one class allowed on top:
``argparse.Namespace``, the ``args`` that the DiT-family training scripts (SiT, DiCo, Diffusion-RWKV) save
next to the weights. A Namespace is rebuilt as an empty object whose ``__dict__`` gets the stored
plain values, so allowing it runs no code; any other class (``os.system`` in a crafted ``__reduce__``,
say) is refused before it is called. A file that is neither (text, random bytes, an empty file) is named as
not a checkpoint before torch reads it: torch's own error for such bytes is an opaque unpickler message
(``KeyError: 101`` for a text file).
"""
from __future__ import annotations

import argparse
import contextlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

ALLOWED_CLASSES = (argparse.Namespace,)
EXPECTED = "expected an official .pt / .pth / .safetensors checkpoint"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since torch 1.6
PICKLE_PROTO = 0x80  # the PROTO opcode that starts a legacy torch.save pickle (protocol 2)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A pickle weights-only loading refuses: it names a class beyond tensors, plain containers and
    ``argparse.Namespace``, or uses an opcode that loader does not run."""


def load_official(path: str | Path, trusted: bool = False) -> Any:
    """The object an official checkpoint file holds, read safely (see the module docstring), on the CPU.
    ``trusted`` (``visionmix convert --trust-checkpoint``, never a zoo file) unpickles fully instead."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a directory, not a checkpoint file; {EXPECTED}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path.resolve()}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for a bad header or a short file
            raise _unreadable(path, err) from err
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not head:
        raise RuntimeError(f"{path}: not a checkpoint: the file is empty (0 bytes); {EXPECTED}")
    if not head.startswith(ZIP_MAGIC) and head[0] != PICKLE_PROTO:
        raise RuntimeError(f"{path}: not a checkpoint (neither a zip-format torch file nor a pickle): it starts "
                           f"with {head!r}; {EXPECTED}")
    try:
        with _allowed_classes():
            return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights only" not in text.lower():  # not a refusal: bytes that are no pickle at all
            raise _unreadable(path, err) from err
        found = re.search(r"GLOBAL\s+([\w.]+)", text)
        if found is None:  # an opcode the weights-only unpickler does not run: corrupt, or an exotic pickle
            detail = next((line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines()
                           if line.strip()), "")
            raise UnsafeCheckpointError(f"{path}: not a checkpoint weights-only loading can read ({detail}): "
                                        "truncated, corrupt, or a pickle of arbitrary objects") from None
        raise UnsafeCheckpointError(
            f"{path}: refused to unpickle the class/function {found.group(1)}; official checkpoints hold only "
            "tensors, plain containers and argparse.Namespace. If you made this file and trust it, pass "
            "--trust-checkpoint to visionmix convert (full unpickling runs any code inside it) or re-save just its "
            "state dict (torch.save(model.state_dict(), ...)) and convert that"
            + ("" if hasattr(torch.serialization, "safe_globals") else
               f" (torch {torch.__version__} cannot allow argparse.Namespace: torch >= 2.5 can)")) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile) as err:
        raise _unreadable(path, err) from err
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as err:
        # the unpickler's own failures on damaged bytes after a valid header (a memo key it never stored)
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: Exception) -> RuntimeError:
    # torch's first sentence says what failed; the rest of its text is advice meant for torch's own developers
    first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else ""
    detail = first[:200] or ("the file ends early" if isinstance(err, EOFError) else "no detail")
    return RuntimeError(f"{path}: not a readable checkpoint (truncated or corrupt?): {type(err).__name__}: {detail}")


def _allowed_classes() -> contextlib.AbstractContextManager:
    """Context in which ``weights_only`` loading also accepts :data:`ALLOWED_CLASSES`. Before torch 2.5
    (no ``safe_globals``) nothing is added: plain state dicts still load, training pickles are refused."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    return safe_globals(list(ALLOWED_CLASSES)) if safe_globals else contextlib.nullcontext()
