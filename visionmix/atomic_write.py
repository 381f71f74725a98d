"""Files appear whole or not at all: write under a temporary name in the same folder, then rename.

``os.replace`` within one folder is atomic, so a reader (or a resumed run) sees either the old file or the new one,
never half a file, whatever stops the writer: a crash, a kill, a full disk. The temporary name keeps the file's
suffix (writers such as ``np.savez``, PIL and safetensors go by it) and is removed on any failure.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """``with atomic_path(out) as temp: write(temp)``: ``temp`` becomes ``out`` when the block ends without an
    error, and is removed otherwise. ``fsync``: flush the file to disk before the rename (data a crash must not
    lose, e.g. dataset shards)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temp
        if fsync:
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` at ``path``, whole or not at all."""
    with atomic_path(path) as temp:
        temp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)
