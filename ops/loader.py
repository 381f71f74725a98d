"""Builds (or finds) the native Bi-WKV extension.

A module compiled ahead of time by ``setup.py`` (``VISIONMIX_BUILD_OPS=1``, see ``build.py``) is
used when present. Otherwise the sources in ``csrc/`` are compiled with ninja on first use through
``torch.utils.cpp_extension.load`` into a folder of ``$VISIONMIX_OPS_CACHE`` (default
``~/.cache/visionmix/ops``). CUDA kernels are compiled only when a GPU is visible and the CUDA
toolkit is found; torch then targets the architecture of that GPU (or ``TORCH_CUDA_ARCH_LIST``).

The folder is named by a hash of everything that changes the binary (:func:`build_key`): the
sources' contents and flags, torch (version, C++ ABI, CUDA), the Python ABI, the ISA level and the
compiler. Interpreters whose keys agree (two venvs with one torch, two checkouts of one commit)
share a build; others get their own folder, so they never rebuild over each other in turn. A
finished build leaves ``build.json`` (its key) next to the library; a later process that finds it
imports the library directly, without running ninja or the compiler.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import torch

from .build import CPU_SOURCES, CUDA_SOURCES, CXX_FLAGS, NVCC_FLAGS, OPENMP

CSRC = Path(__file__).resolve().parent / "csrc"
PREBUILT_NAME = "_bi_wkv_native"
LD_FLAGS = list(OPENMP)
# x86 levels the JIT build compiles for, by torch's view of this CPU (see bi_wkv_cpu_common.h)
ISA_LEVELS = {"AVX512": "x86-64-v4", "AVX2": "x86-64-v3"}
STAMP = "build.json"  # written once a build succeeds: its key
LOG = "build.log"  # the full output of the last failed build
KEY_FORMAT = "1"  # bump when the key or the folder layout changes meaning


class NativeBuildError(RuntimeError):
    """The JIT build failed; the message is one line (the first compiler error and the log's path)."""


def cache_dir() -> Path:
    """Root of the JIT build cache."""
    root = os.environ.get("VISIONMIX_OPS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "visionmix" / "ops"


def cuda_home() -> Optional[str]:
    """The CUDA toolkit torch would compile with, if any."""
    from torch.utils import cpp_extension

    return cpp_extension.CUDA_HOME


def wants_cuda() -> bool:
    """Whether a JIT build should include the CUDA kernels."""
    return torch.cuda.is_available() and cuda_home() is not None


def sources(with_cuda: bool) -> List[str]:
    """Paths of the translation units of a JIT build."""
    names = CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())
    return [str(CSRC / name) for name in names]


def host_isa() -> Optional[str]:
    """The x86-64 level (``-march``) a JIT build targets on this CPU; None off x86-64 Linux, where
    the sources' portable default applies."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"):
        return None
    return ISA_LEVELS.get(torch.backends.cpu.get_cpu_capability(), "x86-64")


def jit_cxx_flags() -> List[str]:
    """C++ flags of a JIT build: the shared ones plus the host's ISA level."""
    isa = host_isa()
    return CXX_FLAGS + ([f"-march={isa}", "-DVISIONMIX_WKV_HOST_ISA"] if isa else [])


def compiler() -> str:
    """The C++ compiler torch's JIT build runs (``$CXX``, else ``c++``)."""
    return os.environ.get("CXX", "c++")


@functools.lru_cache(maxsize=None)
def compiler_id(cxx: str) -> str:
    """First line of ``cxx --version`` (``missing <cxx>`` when it does not run)."""
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return f"missing {cxx}"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return f"{cxx}: {lines[0] if lines else f'exit {out.returncode}'}"


def source_digest() -> str:
    """sha256 over the names and contents of every file in ``csrc/``."""
    digest = hashlib.sha256()
    for path in sorted(CSRC.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cuda_target() -> str:
    """What a CUDA build targets: ``TORCH_CUDA_ARCH_LIST``, else the visible GPUs' capabilities."""
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if arch:
        return arch
    caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return ";".join(f"{major}.{minor}" for major, minor in sorted(caps))


def build_key(with_cuda: bool) -> Dict[str, str]:
    """Everything that changes the compiled binary, as strings."""
    return {
        "format": KEY_FORMAT,
        "sources": source_digest(),
        "flags": " ".join(jit_cxx_flags() + ["|"] + NVCC_FLAGS + ["|"] + LD_FLAGS),
        "torch": torch.__version__,
        "cxx11_abi": str(bool(torch._C._GLIBCXX_USE_CXX11_ABI)),
        "cuda": (f"cuda{torch.version.cuda} {cuda_target()} {cuda_home()}" if with_cuda else "none"),
        "cache_tag": str(sys.implementation.cache_tag),
        "soabi": str(sysconfig.get_config_var("SOABI") or sysconfig.get_config_var("EXT_SUFFIX")),
        "isa": host_isa() or "any",
        "compiler": compiler_id(compiler()),
    }


def key_digest(key: Dict[str, str]) -> str:
    """Short hash of a build key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def build_dir(name: str, key: Dict[str, str]) -> Path:
    """The cache folder of one build: readable prefix, then the key's hash."""
    tag = f"{name}-torch{key['torch']}-{key['cache_tag']}-{key['isa']}-{key_digest(key)}"
    return cache_dir() / re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)


def _import_library(name: str, path: Path) -> ModuleType:
    """Import a built extension module from its file (what torch's ``load`` does after a build)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cached_build(folder: Path, key: Dict[str, str]) -> Optional[ModuleType]:
    """The finished build in ``folder`` if its stamp matches ``key``, else None."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
        library = folder / stamp["library"]
        if stamp["key"] != key or not library.is_file():
            return None
        return _import_library(library.name.split(".")[0], library)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return None


def _write_stamp(folder: Path, key: Dict[str, str], module: ModuleType) -> None:
    # torch names the library name_v<N> when one process builds the same name twice: record it
    library = Path(getattr(module, "__file__", "") or "")
    if library.parent.resolve() == folder.resolve():
        stamp = json.dumps({"library": library.name, "key": key}, indent=1, sort_keys=True)
        (folder / STAMP).write_text(stamp + "\n")


def _build(name: str, folder: Path, with_cuda: bool, verbose: bool) -> ModuleType:
    """Compile with ninja through ``torch.utils.cpp_extension.load`` and import the result."""
    from torch.utils.cpp_extension import load

    return load(name=name, sources=sources(with_cuda), extra_cflags=jit_cxx_flags(),
                extra_cuda_cflags=NVCC_FLAGS, extra_ldflags=LD_FLAGS, extra_include_paths=[str(CSRC)],
                build_directory=str(folder), with_cuda=with_cuda, verbose=verbose)


def summarise_build_error(text: str) -> str:
    """The first compiler error of a build log (else its last line), and how many more there are."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)
              and not line.startswith(("FAILED", "Error building extension", "ninja: build stopped"))]
    first = errors[0] if errors else (lines[-1] if lines else "no output")
    more = f" (+{len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return (first[:240] + "...") if len(first) > 240 else first + more


def _say(message: str) -> None:
    print(f"visionmix: {message}", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=None)
def load_native(verbose: bool = False) -> ModuleType:
    """The compiled extension (prebuilt, cached, or JIT-built now and memoised).

    Raises :class:`NativeBuildError` (one line) when the build fails; with ``verbose`` the
    compiler's own exception instead, after writing its output to the folder's ``build.log``."""
    module = _prebuilt()
    if module is not None:
        return module
    from filelock import FileLock  # a dependency of torch

    with_cuda = wants_cuda()
    name = "visionmix_bi_wkv_cuda" if with_cuda else "visionmix_bi_wkv_cpu"
    key = build_key(with_cuda)
    folder = build_dir(name, key)
    module = cached_build(folder, key)
    if module is not None:
        return module
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "build.lock")):  # a concurrent first use waits for one build
        module = cached_build(folder, key)
        if module is not None:
            return module
        _say(f"building the native Bi-WKV op (about 30 s, once per torch/python/compiler): {folder}")
        (folder / STAMP).unlink(missing_ok=True)
        try:
            module = _build(name, folder, with_cuda, verbose)
        except Exception as exc:
            log = folder / LOG
            log.write_text(f"{exc}\n")
            if verbose:
                raise
            message = f"native Bi-WKV op build failed: {summarise_build_error(str(exc))} (full log: {log})"
            _say(message)
            raise NativeBuildError(message) from exc
        _write_stamp(folder, key, module)
    return module


def _prebuilt() -> Optional[ModuleType]:
    package = __package__ or "visionmix.ops"
    try:
        return importlib.import_module(f"{package}.{PREBUILT_NAME}")
    except ImportError:
        return None
