"""The model zoo's weights files: where a row's file is, downloading it, and the checks that guard the cache.

:func:`obtain` is the one way in. It returns a row's file together with what a caller's ``check`` made of it (the
hub reads and converts the weights there), and it decides what happens to a file that fails:

- A download lands under a temporary name in the cache folder; it is hashed and checked under that name and
  renamed to ``<file>`` only when everything passed, so a failed download or check leaves nothing in the cache.
  An unpinned row's hash is recorded in ``<file>.sha256`` only after that: a refused file is never trusted.
- A cached file that fails is deleted (with its ``.sha256`` record when the record came from it) and the error
  names what was deleted and what the next run does; nothing is downloaded again in the same call.
- A row's local file (a relative ``weights:`` path beside its table, e.g. the packaged digits rows) is never
  deleted: the error says how to restore it.

Only the standard library is imported here: listing the zoo and hashing files stay cheap.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Callable, Mapping, TypeVar
from urllib.error import HTTPError
from urllib.parse import unquote, urlparse

from .atomic_write import write_text

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
MIRROR_ENV = "VISIONMIX_ZOO_MIRROR"
_VERIFIED: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, sha256) checked in this process
# load_official's advice for a refused pickle assumes the reader made the file; nobody re-saves a zoo file
_RESAVE_ADVICE = re.compile(r" If you made this file and trust it, .*? and convert that")
T = TypeVar("T")


class ZooError(RuntimeError):
    """A zoo table, row or weights file that cannot be used as it is."""


class HashMismatchError(ZooError):
    """A weights file whose sha256 is not the one pinned or recorded for it."""


class DownloadError(ZooError, OSError):
    """A row's URL (or its mirror) that could not be fetched. An OSError too: callers that caught urllib's errors
    (OSErrors) before this existed still catch it."""


def cache_dir() -> Path:
    """Where downloaded zoo weights live: ``torch.hub.get_dir()/checkpoints/visionmix``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / "visionmix"


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_url(text: str) -> bool:
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


def pinned_sha(row: Mapping) -> str | None:
    """The row's ``sha256`` (lower-case hex), or None for an unpinned row."""
    value = row.get("sha256")
    if value is None:
        return None
    value = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ZooError(f"zoo row {row['name']!r}: sha256 must be 64 hex digits or null, got {row['sha256']!r}")
    return value


def _mirrored(url: str, name: str) -> str:
    """``url``, or the file ``name`` under ``$VISIONMIX_ZOO_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    if is_url(mirror):
        return mirror.rstrip("/") + "/" + name
    local = Path(mirror).expanduser() / name
    if not local.is_file():
        raise FileNotFoundError(f"{MIRROR_ENV}={mirror} has no {name} (wanted for {url}); copy the file there "
                                f"or unset {MIRROR_ENV} to download from the original location")
    return local.resolve().as_uri()


def _verify(path: Path, expected: str, source: str) -> None:
    """Check ``path`` against ``expected`` once per process (again if the file changed)."""
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns, expected)
    if _VERIFIED.get(str(path)) == key:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise HashMismatchError(f"{path} has sha256 {actual}, expected {expected} ({source})")
    _VERIFIED[str(path)] = key


def _recorded(record: Path) -> str | None:
    if not record.is_file():
        return None
    words = record.read_text().split()
    if not words or not re.fullmatch(r"[0-9a-f]{64}", words[0]):
        raise ZooError(f"{record} is not a sha256 record (64 hex digits, then the file name); delete it, and the "
                       "next download is trusted and recorded afresh")
    return words[0]


def _record_first_use(path: Path, digest: str, row: Mapping) -> None:
    """Trust on first use: write ``<file>.sha256`` and say once that the row is not pinned."""
    record = path.with_name(path.name + ".sha256")
    write_text(record, f"{digest}  {path.name}\n")
    print(f"zoo:{row['name']}: {path.name} has sha256 {digest}; the row in {row['table']} is not pinned, so this "
          f"first download is trusted and recorded in {record} (later uses are checked against it; pin it in the "
          f"table with sha256: {digest})", file=sys.stderr)


def _discard(*paths: Path) -> list[str]:
    """Delete those of ``paths`` that exist; their names, for the error that says so."""
    gone = []
    for path in paths:
        _VERIFIED.pop(str(path), None)
        if path.is_file():
            path.unlink()
            gone.append(str(path))
    return gone


def _restated(err: Exception, row: Mapping, outcome: str, temp: Path | None = None, url: str = "") -> Exception:
    """``err`` (same type) with what became of the file; a temporary name is shown as the URL it came from."""
    text = _RESAVE_ADVICE.sub("", str(err))
    if temp is not None:
        text = text.replace(str(temp), url)
    if not text.startswith(f"zoo:{row['name']}"):
        text = f"zoo:{row['name']}: {text}"
    head, _, tail = text.partition("\n")  # a mismatch lists tensors on later lines: the outcome stays in view
    return type(err)(f"{head}; {outcome}" + (f"\n{tail}" if tail else ""))


def _local_advice(path: Path, row: Mapping) -> str:
    if PACKAGE_DIR in path.resolve().parents:
        rel = path.resolve().relative_to(REPO_ROOT)
        return (f"{path} ships with visionmix and was left as it is: restore it with `git checkout -- {rel}` in a "
                "checkout, or reinstall the package (`pip install --force-reinstall visionmix`)")
    return f"{path} is the row's own file in {row['table']} and was left as it is: restore it or fix the row"


def _download(url: str, dest: Path, name: str, row: Mapping, progress: bool) -> None:
    import torch.hub

    try:
        torch.hub.download_url_to_file(url, str(dest), progress=progress)
    except (OSError, ValueError) as err:  # urllib's URLError and HTTPError are OSErrors; a bad URL a ValueError
        why = f"HTTP {err.code} {err.reason}" if isinstance(err, HTTPError) else getattr(err, "reason", None) or err
        mirror = os.environ.get(MIRROR_ENV)
        where = (f"{MIRROR_ENV}={mirror} stands in for {row['weights']}: check that the mirror serves "
                 f"{name}, or unset {MIRROR_ENV}" if mirror else
                 f"check the row's URL in {row['table']}, or serve the file through {MIRROR_ENV}")
        raise DownloadError(f"zoo:{row['name']}: could not download {url} ({' '.join(str(why).split())}); "
                            f"nothing was cached; {where}") from err


def obtain(row: Mapping, check: Callable[[Path], T], faults: tuple[type[Exception], ...],
           progress: bool = True) -> tuple[Path, T]:
    """Row ``row``'s weights file (downloaded into :func:`cache_dir` when a URL) and ``check(file)``.

    ``check`` reads the file; the exceptions in ``faults`` mean the file is bad (others propagate untouched and
    leave a cached file alone). See the module docstring for what becomes of a file that fails."""
    weights, pinned = str(row["weights"]), pinned_sha(row)
    if not is_url(weights):
        return _obtain_local(row, Path(weights).expanduser(), pinned, check, faults)
    name = file_name(row)
    target = cache_dir() / name
    record = target.with_name(name + ".sha256")
    recorded = None if pinned else _recorded(record)
    if target.is_file():
        return _obtain_cached(row, target, record, pinned, recorded, check, faults)
    url = _mirrored(weights, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".partial-{uuid.uuid4().hex}-{name}")  # same suffix: readers go by it
    try:
        _download(url, temp, name, row, progress)
        actual, expected = sha256_of(temp), pinned or recorded
        if expected and actual != expected:
            why = (f"pinned in {row['table']}); nothing was cached. A changed upstream file or a wrong mirror "
                   f"({MIRROR_ENV}) are the usual causes" if pinned else
                   f"recorded at its first download in {record}); nothing was cached. If the upstream file "
                   f"changed on purpose, delete {record}")
            raise HashMismatchError(f"zoo:{row['name']}: {url} has sha256 {actual}, expected {expected} ({why}")
        try:
            result = check(temp)
        except faults as err:
            raise _restated(err, row, "nothing was cached", temp, url) from err
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    if not pinned and recorded is None:  # only now: the file passed every check
        _record_first_use(target, actual, row)
    stat = target.stat()
    _VERIFIED[str(target)] = (stat.st_size, stat.st_mtime_ns, actual)
    return target, result


def _obtain_cached(row: Mapping, target: Path, record: Path, pinned: str | None, recorded: str | None,
                   check: Callable[[Path], T], faults: tuple[type[Exception], ...]) -> tuple[Path, T]:
    try:
        if pinned:
            _verify(target, pinned, f"pinned for zoo:{row['name']} in {row['table']}")
        elif recorded:
            _verify(target, recorded, f"recorded at its first download in {record}")
    except HashMismatchError as err:
        _discard(target)  # the record stays: it is what the next download is checked against
        outcome = f"the cached file was corrupt or replaced: deleted {target}; the next run downloads it again"
        if not pinned:
            outcome += (f" and checks it against that record. If the upstream file changed on purpose, also "
                        f"delete {record}")
        raise _restated(err, row, outcome) from err
    try:
        result = check(target)
    except faults as err:
        gone = _discard(target, record)  # a record made from a refused file must not vouch for the next one
        raise _restated(err, row, f"deleted {' and '.join(gone)}; the next run downloads it again") from err
    if not pinned and recorded is None:  # cached by someone else (e.g. torch.hub itself): our first use of it
        _record_first_use(target, sha256_of(target), row)
    return target, result


def _obtain_local(row: Mapping, path: Path, pinned: str | None, check: Callable[[Path], T],
                  faults: tuple[type[Exception], ...]) -> tuple[Path, T]:
    path = path if path.is_absolute() else Path(row["table"]).parent / path
    if not path.is_file():
        why = (f"the row is {row['status']}: `visionmix zoo reproduce {row['name']}` trains and exports it"
               if row.get("status") else "is the package installed with its zoo files?")
        raise FileNotFoundError(f"zoo:{row['name']}: weights file {path} not found ({why})")
    try:
        if pinned:
            _verify(path, pinned, f"pinned for zoo:{row['name']} in {row['table']}")
        return path, check(path)
    except (HashMismatchError, *faults) as err:  # never deleted: there is nothing to download it from
        raise _restated(err, row, _local_advice(path, row)) from err
