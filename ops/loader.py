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
import importlib
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import List, Optional

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
PREBUILT_NAME = "_bi_wkv_native"
CPU_SOURCES = ("bi_wkv_ops.cpp", "bi_wkv_cpu.cpp")
CUDA_SOURCES = ("bi_wkv_cuda.cu",)
# No -march: the CPU kernels carry their own AVX-512 / AVX2 clones chosen at run time, so the
# binary runs wherever the cache directory is shared. -ffp-contract=fast allows fused multiply-adds
# (one rounding instead of two); -fno-trapping-math lets the channel loops vectorise their selects
# on floats and changes no result; -fopenmp is what makes at::parallel_for parallel in extension
# code (its OpenMP loop is inlined from the headers), and the link reuses the libgomp torch has
# loaded (same soname).
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []
CXX_FLAGS = ["-O3", "-ffp-contract=fast", "-fno-trapping-math"] + OPENMP
LD_FLAGS = list(OPENMP)
NVCC_FLAGS = ["-O3"]


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


def _prebuilt() -> Optional[ModuleType]:
    package = __package__ or "visionmix.ops"
    try:
        return importlib.import_module(f"{package}.{PREBUILT_NAME}")
    except ImportError:
        return None


def _build_dir(name: str) -> Path:
    tag = f"{name}-torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
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
        extra_cflags=CXX_FLAGS,
        extra_cuda_cflags=NVCC_FLAGS,
        extra_ldflags=LD_FLAGS,
        extra_include_paths=[str(CSRC)],
        build_directory=str(_build_dir(name)),
        with_cuda=with_cuda,
        verbose=verbose,
    )
