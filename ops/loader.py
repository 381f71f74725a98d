"""Builds (or finds) the native Bi-WKV extension.

A module compiled ahead of time by ``setup.py`` (``VISIONMIX_BUILD_OPS=1``, see ``build.py``) is
used when present. Otherwise the sources in ``csrc/`` are compiled with ninja on first use through
``torch.utils.cpp_extension.load`` into ``$VISIONMIX_OPS_CACHE`` (default
``~/.cache/visionmix/ops``); later runs reuse that build until a source file changes. CUDA
kernels are compiled only when a GPU is visible and the CUDA toolkit is found; torch then targets
the architecture of that GPU (or ``TORCH_CUDA_ARCH_LIST``).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import os
import platform
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import List, Optional

import torch

from .build import CPU_SOURCES, CUDA_SOURCES, CXX_FLAGS, NVCC_FLAGS, OPENMP

CSRC = Path(__file__).resolve().parent / "csrc"
PREBUILT_NAME = "_bi_wkv_native"
LD_FLAGS = list(OPENMP)
# x86 levels the JIT build compiles for, by torch's view of this CPU (see bi_wkv_cpu_common.h)
ISA_LEVELS = {"AVX512": "x86-64-v4", "AVX2": "x86-64-v3"}


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
    names = CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())
    return [str(CSRC / name) for name in names]


def host_isa() -> Optional[str]:
    """The x86-64 level (``-march``) a JIT build targets on this CPU; None off x86-64 Linux, where
    the sources' portable default applies."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"):
        return None
    return ISA_LEVELS.get(torch.backends.cpu.get_cpu_capability(), "x86-64")


def jit_cxx_flags() -> List[str]:
    isa = host_isa()
    return CXX_FLAGS + ([f"-march={isa}", "-DVISIONMIX_WKV_HOST_ISA"] if isa else [])


def _prebuilt() -> Optional[ModuleType]:
    package = __package__ or "visionmix.ops"
    try:
        return importlib.import_module(f"{package}.{PREBUILT_NAME}")
    except ImportError:
        return None


def _build_dir(name: str) -> Path:
    # The ISA level is part of the name, since a cache directory may be shared by different machines,
    # and so is the source folder: two checkouts would otherwise rebuild over each other in turn.
    where = hashlib.sha1(str(CSRC).encode()).hexdigest()[:8]
    tag = (f"{name}-torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
           f"-{host_isa() or 'any'}-{where}")
    path = cache_dir() / re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=None)
def load_native(verbose: bool = False) -> ModuleType:
    """The compiled extension (prebuilt, or JIT-built and memoised). Raises if it cannot build."""
    module = _prebuilt()
    if module is not None:
        return module
    from torch.utils.cpp_extension import load

    with_cuda = wants_cuda()
    name = "visionmix_bi_wkv_cuda" if with_cuda else "visionmix_bi_wkv_cpu"
    return load(
        name=name,
        sources=sources(with_cuda),
        extra_cflags=jit_cxx_flags(),
        extra_cuda_cflags=NVCC_FLAGS,
        extra_ldflags=LD_FLAGS,
        extra_include_paths=[str(CSRC)],
        build_directory=str(_build_dir(name)),
        with_cuda=with_cuda,
        verbose=verbose,
    )
