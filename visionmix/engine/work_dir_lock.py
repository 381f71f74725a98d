"""One run per work dir: an advisory lock taken before the run writes anything there.

Two runs in one work dir interleave checkpoints, ``last_checkpoint`` and config dumps; one of them later resumes
from the other's weights. :class:`WorkDirLock` holds ``<work_dir>/.visionmix.lock`` with ``fcntl.flock`` for the
life of the run (the kernel drops it when the process dies, however it dies) and writes who holds it (PID, host,
start time, command) for the refusal message. A lock file left by a run that is gone (a dead PID on this host) is
taken over with a warning; one whose holder is alive, or on another host, is refused with how to clear it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".visionmix.lock"


class WorkDirLockedError(RuntimeError):
    """Another run holds the work dir."""


class WorkDirLock:
    """``with WorkDirLock(work_dir) as lock: ...`` (or :meth:`acquire` / :meth:`release`). ``lock.taken_over``
    describes a stale lock that was replaced (None otherwise), for the caller to warn about."""

    def __init__(self, work_dir: str | os.PathLike) -> None:
        self.work_dir = Path(work_dir)
        self.path = self.work_dir / LOCK_NAME
        self.taken_over: str | None = None
        self._fd: int | None = None
        self._made_dir = False

    def acquire(self) -> "WorkDirLock":
        if self.work_dir.exists() and not self.work_dir.is_dir():
            raise NotADirectoryError(f"work dir {self.work_dir.resolve()} is a file, not a folder: pass --work-dir "
                                     "with a folder")
        self._made_dir = not self.work_dir.exists()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the file may be replaced between open and lock by a run that just finished
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_soon(fd)
                os.close(fd)
                self._forget_dir()
                raise WorkDirLockedError(f"work dir {self.work_dir.resolve()} is in use by another run "
                                         f"({describe(holder)}); wait for it to finish or pass --work-dir "
                                         "DIR") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise WorkDirLockedError(f"could not lock {self.path}: it keeps being replaced by another run")
        previous = _read(fd)
        try:
            self._check_previous(previous)
        except WorkDirLockedError:
            os.close(fd)
            self._forget_dir()
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join([os.path.basename(sys.executable), *sys.argv])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def _check_previous(self, previous: dict) -> None:
        """A lock file nobody flock()s: left by a killed run, or held where flock does not reach (another host)."""
        pid, host = previous.get("pid"), previous.get("host")
        if not isinstance(pid, int) or pid == os.getpid():
            return
        if host == socket.gethostname() and not _alive(pid):
            self.taken_over = f"took over the lock of a run that is gone ({describe(previous)})"
            return
        where = "alive on this host" if host == socket.gethostname() else f"on host {host}"
        raise WorkDirLockedError(f"work dir {self.work_dir.resolve()} is locked by {describe(previous)}, {where}; "
                                 f"if that run is gone, delete {self.path} and start again")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # drops the flock
        self._fd = None
        self._forget_dir()

    def _forget_dir(self) -> None:
        """Remove the work dir again if this lock made it and nothing else was written there."""
        if self._made_dir:
            with contextlib.suppress(OSError):
                self.work_dir.rmdir()
            self._made_dir = False

    def __enter__(self) -> "WorkDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return (f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}: "
            f"{holder.get('command', '?')}")


def _read(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_soon(fd: int, wait: float = 2.0) -> dict:
    """The holder's record; a run that has just taken the lock writes it a moment later, so wait for it briefly."""
    deadline = time.monotonic() + wait
    while not (holder := _read(fd)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return holder


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
