"""Ahead-of-time build of the native Bi-WKV extension, used by ``setup.py`` when
``VISIONMIX_BUILD_OPS=1``. The module lands next to ``loader.py`` as ``visionmix.ops._bi_wkv_native``
and is preferred over the JIT build.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))


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
    sources = [os.path.join(rel, "bi_wkv_ops.cpp"), os.path.join(rel, "bi_wkv_cpu.cpp")]
    name = "visionmix.ops._bi_wkv_native"
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []  # see loader.py
    cxx = ["-O3", "-ffp-contract=fast", "-fno-trapping-math"] + openmp
    include = [os.path.join(_HERE, "csrc")]
    with_cuda = CUDA_HOME is not None and (
        torch.cuda.is_available() or bool(os.environ.get("TORCH_CUDA_ARCH_LIST")))
    if CUDA_HOME is not None and not with_cuda:
        print("visionmix: no GPU and no TORCH_CUDA_ARCH_LIST, building the CPU kernels only")
    if with_cuda:
        ext = CUDAExtension(name, sources + [os.path.join(rel, "bi_wkv_cuda.cu")],
                            include_dirs=include, extra_link_args=openmp,
                            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]})
    else:
        ext = CppExtension(name, sources, include_dirs=include, extra_link_args=openmp,
                           extra_compile_args={"cxx": cxx})
    return [ext], {"build_ext": BuildExtension}
