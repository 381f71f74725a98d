"""Ahead-of-time build of the native Bi-WKV extension, used by ``setup.py`` when
``VISIONMIX_BUILD_OPS=1``. The module lands next to ``loader.py`` as ``visionmix.ops._bi_wkv_native``
and is preferred over the JIT build.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))

# Shared with the JIT build in loader.py. The CPU kernels come in two translation units (forward,
# backward) so that ninja compiles them side by side.
CPU_SOURCES = ("bi_wkv_ops.cpp", "bi_wkv_cpu_forward.cpp", "bi_wkv_cpu_backward.cpp")
CUDA_SOURCES = ("bi_wkv_cuda.cu",)
# -ffp-contract=fast allows fused multiply-adds (one rounding instead of two); -fno-trapping-math
# lets the channel loops vectorise their selects on floats and changes no result; -fopenmp is what
# makes at::parallel_for parallel in extension code (its OpenMP loop is inlined from the headers),
# and the link reuses the libgomp torch has loaded (same soname).
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []
CXX_FLAGS = ["-O3", "-ffp-contract=fast", "-fno-trapping-math"] + OPENMP
NVCC_FLAGS = ["-O3"]


def ahead_of_time_extensions() -> Tuple[List[object], Dict[str, type]]:
    """``(ext_modules, cmdclass)`` for ``setup()``: a CUDAExtension when the CUDA toolkit is found
    (``CUDA_HOME``), else a CppExtension.

    Torch compiles for the GPU it sees, or for ``TORCH_CUDA_ARCH_LIST``; with neither it cannot
    choose an architecture, so the build is then CPU-only (set the list to build CUDA kernels on a
    machine without a GPU, e.g. ``TORCH_CUDA_ARCH_LIST="8.0;9.0"``).
    """
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    # setuptools wants source paths relative to setup.py, which sits one level above this folder.
    rel = os.path.relpath(os.path.join(_HERE, "csrc"), os.path.dirname(_HERE))
    sources = [os.path.join(rel, name) for name in CPU_SOURCES]
    name = "visionmix.ops._bi_wkv_native"
    # no -march: the kernels carry AVX-512 / AVX2 / baseline clones (bi_wkv_cpu_common.h)
    openmp, cxx = OPENMP, CXX_FLAGS
    include = [os.path.join(_HERE, "csrc")]
    with_cuda = CUDA_HOME is not None and (
        torch.cuda.is_available() or bool(os.environ.get("TORCH_CUDA_ARCH_LIST")))
    if CUDA_HOME is not None and not with_cuda:
        print("visionmix: no GPU and no TORCH_CUDA_ARCH_LIST, building the CPU kernels only")
    if with_cuda:
        ext = CUDAExtension(name, sources + [os.path.join(rel, n) for n in CUDA_SOURCES],
                            include_dirs=include, extra_link_args=openmp,
                            extra_compile_args={"cxx": cxx, "nvcc": NVCC_FLAGS})
    else:
        ext = CppExtension(name, sources, include_dirs=include, extra_link_args=openmp,
                           extra_compile_args={"cxx": cxx})
    return [ext], {"build_ext": BuildExtension}
