"""Where data sets live, and the one error message for "it is not there".

Every dataset resolves its ``root`` with :func:`resolve_root`:

* ``~`` and ``$VARS`` are expanded, so a config may say ``root="$VISIONMIX_DATA/imagenet/train"``;
* a *relative* root is looked up under ``$VISIONMIX_DATA`` when that variable is set, else under the
  current directory, so configs can ship ``root="imagenet/train"`` and each machine sets one variable.

A missing root raises :class:`FileNotFoundError` built by :func:`missing_data_error`, which names the
path that was searched, what should be there, and how to point visionmix at it. Nothing can be
downloaded from inside visionmix, so the message is the whole user interface of a missing data set.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "VISIONMIX_DATA"


def resolve_root(root: str | os.PathLike) -> Path:
    """Expand ``~``/``$VARS``; place a relative path under ``$VISIONMIX_DATA`` when that is set."""
    path = Path(os.path.expandvars(os.path.expanduser(os.fspath(root))))
    base = os.environ.get(DATA_ENV)
    if not path.is_absolute() and base:
        path = Path(base).expanduser() / path
    return path


def missing_data_error(path: str | os.PathLike, expected: str) -> FileNotFoundError:
    """The error every dataset raises when its data is absent: where we looked and what belongs there."""
    hint = (f"pass --data-root <dir> (visionmix train), set data_root in the config, or set {DATA_ENV}=<dir> to "
            "resolve relative roots under <dir>")
    if "$" in os.fspath(path):
        hint += f" (an environment variable in the path was not set: {DATA_ENV}={os.environ.get(DATA_ENV)!r})"
    return FileNotFoundError(f"no data at {os.fspath(path)!r}: expected {expected}; {hint}")
