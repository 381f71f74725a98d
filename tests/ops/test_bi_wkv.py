"""Bi-WKV operator: native (C++/CUDA) and PyTorch paths against the dense float64 oracle.

Errors are bounded relative to a scale. For y it is the largest |y|. Every gradient is a sum over
(query t, key i) pairs of terms g_t p[t,i] (v_i - y_t), weighted by (|t-i| - 1) for dw and taken on
the diagonal for du; these terms cancel (each query's weights sum to one), for dw by up to four
orders of magnitude when w < 0 pulls the weight to both far ends, and fp32 cannot resolve a sum
below the rounding of its terms. So a gradient's scale is the largest, over its entries, sum of
|g_t| p[t,i] (|v_i| + |y_t|) over its terms (|g_t| p[t,i] for dv), which is the usual bound for a
floating-point sum. Results far below fp32's normal range (e^-80 diagonals) get an absolute floor.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import warnings
import zlib
from pathlib import Path

import pytest
import torch

import visionmix.ops as ops
from visionmix.ops import bi_wkv, bi_wkv_dense, bi_wkv_flops, bi_wkv_torch, loader
from visionmix.ops.reference import _bias

pytestmark = [pytest.mark.native]

TOL = 1e-5
FLOOR = 16 * torch.finfo(torch.float32).tiny  # values below fp32's normal range are not resolved


@pytest.fixture(scope="module")
def native():
    """Forces the native backend; skips only where no C++ compiler exists at all."""
    if ops.native_build_error() is not None:
        if shutil.which(os.environ.get("CXX", "c++")) is None:
            pytest.skip(f"no C++ compiler: {ops.native_build_error()}")
        pytest.fail(f"native extension failed to build: {ops.native_build_error()}")
    old = os.environ.get("VISIONMIX_WKV_BACKEND")
    os.environ["VISIONMIX_WKV_BACKEND"] = "native"
    yield
    if old is None:
        del os.environ["VISIONMIX_WKV_BACKEND"]
    else:
        os.environ["VISIONMIX_WKV_BACKEND"] = old


def make_inputs(B, T, C, w_mode, k_max, seed, u_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    if w_mode == "wide":  # both signs: decay and growth up to e^{T} over the sequence
        w = torch.rand(C, generator=gen) * 2 - 1
    else:  # small decays of either sign
        w = 0.01 * torch.where(torch.rand(C, generator=gen) < 0.5, -1.0, 1.0)
    u = torch.randn(C, generator=gen) * u_scale
    k = (torch.rand(B, T, C, generator=gen) * 2 - 1) * k_max
    v = torch.randn(B, T, C, generator=gen)
    g = torch.randn(B, T, C, generator=gen)
    return w, u, k, v, g


def oracle(w, u, k, v, g):
    """float64 y and gradients, plus the error scales described in the module docstring."""
    wd, ud, kd, vd = (x.detach().double().requires_grad_() for x in (w, u, k, v))
    y = bi_wkv_dense(wd, ud, kd, vd)
    (y * g.double()).sum().backward()
    with torch.no_grad():
        T = k.shape[1]
        pg = torch.softmax(kd[:, None] + _bias(T, wd, ud), dim=2) * g.double().abs()[:, :, None]
        mag = pg * (vd.abs()[:, None] + y.abs()[:, :, None])  # [b, t, i, c]
        pos = torch.arange(T)
        gaps = ((pos[:, None] - pos[None, :]).abs() - 1).clamp_min(0).double()
        scale = {"y": y.abs().max(), "v": pg.sum(1).max(), "k": mag.sum(1).max(),
                 "u": mag.diagonal(dim1=1, dim2=2).sum((0, 2)).max(),
                 "w": (gaps[None, :, :, None] * mag).sum((0, 1, 2)).max()}
    ref = {"y": y.detach(), "w": wd.grad, "u": ud.grad, "k": kd.grad, "v": vd.grad}
    return ref, {name: float(x) for name, x in scale.items()}


def run(fn, w, u, k, v, g, dtype=torch.float32):
    args = [w.detach().clone().requires_grad_(), u.detach().clone().requires_grad_(),
            k.detach().to(dtype).requires_grad_(), v.detach().to(dtype).requires_grad_()]
    y = fn(*args)
    (y * g.to(dtype)).sum().backward()
    return {"y": y.detach(), "w": args[0].grad, "u": args[1].grad, "k": args[2].grad,
            "v": args[3].grad}


def check(got, ref, scale, tol, what=""):
    for name in ("y", "w", "u", "k", "v"):
        assert got[name].dtype == (torch.float32 if name in "wu" else got["y"].dtype)
        err = (got[name].double() - ref[name]).abs().max().item()
        bound = tol * scale[name] + FLOOR
        assert err <= bound, f"{what} d{name if name != 'y' else ''}: {err:.3e} > {bound:.3e}"


CASES = [(T, w_mode, k_max, C) for T in (1, 7, 64, 256) for w_mode in ("wide", "small")
         for k_max in (3.0, 30.0) for C in (5, 21)]


@pytest.mark.parametrize("T,w_mode,k_max,C", CASES)
def test_native_matches_oracle(native, T, w_mode, k_max, C):
    w, u, k, v, g = make_inputs(2, T, C, w_mode, k_max, seed=zlib.crc32(f"{T}{w_mode}{k_max}{C}".encode()))
    ref, scale = oracle(w, u, k, v, g)
    check(run(bi_wkv, w, u, k, v, g), ref, scale, TOL, f"T={T} {w_mode} k={k_max} C={C}")


@pytest.mark.parametrize("T,w_mode,k_max,C", [c for c in CASES if c[0] in (7, 256)])
def test_torch_fallback_matches_oracle(T, w_mode, k_max, C):
    w, u, k, v, g = make_inputs(2, T, C, w_mode, k_max, seed=T + C)
    ref, scale = oracle(w, u, k, v, g)
    check(run(bi_wkv_torch, w, u, k, v, g), ref, scale, TOL, "torch")


@pytest.mark.parametrize("w_scale,u_scale,k_max", [(5.0, 1.0, 1.0), (0.5, 1.0, 100.0),
                                                   (0.1, 80.0, 1.0), (0.1, -80.0, 3.0)])
def test_native_extreme_inputs(native, w_scale, u_scale, k_max):
    """Per-step decay or growth of e^5, |k| up to 100, a diagonal bonus of e^{+-80}."""
    w, u, k, v, g = make_inputs(1, 100, 19, "wide", k_max, seed=7)
    w, u = w * w_scale, torch.full_like(u, u_scale) + u
    ref, scale = oracle(w, u, k, v, g)
    check(run(bi_wkv, w, u, k, v, g), ref, scale, TOL, f"w*{w_scale} u={u_scale} k={k_max}")


@pytest.mark.parametrize("w_span", [0.002, 0.05])
def test_native_long_sequence(native, w_span):
    """T = 2087: |w| T up to 100, against the chunked path in float64 (itself checked above)."""
    gen = torch.Generator().manual_seed(3)
    T, C = 2087, 19
    w = (torch.rand(C, generator=gen) * 2 - 1) * w_span
    u = torch.randn(C, generator=gen)
    k, v, g = (torch.randn(1, T, C, generator=gen) for _ in range(3))
    got = run(bi_wkv, w, u, k, v, g)
    ref = run(bi_wkv_torch, w.double(), u.double(), k, v, g, dtype=torch.float64)
    for name in ("y", "k", "v"):
        err = (got[name].double() - ref[name]).abs().max().item()
        assert err <= TOL * ref[name].abs().max().item(), f"d{name}: {err:.3e}"


@pytest.mark.parametrize("T,k_max", [(5, 1.0), (40, 1.0), (40, 30.0)])
def test_native_gradcheck_float64(native, T, k_max):
    w, u, k, v, _ = make_inputs(1, T, 3, "wide", k_max, seed=T)
    args = [x.double().requires_grad_() for x in (w * 0.5, u, k, v)]
    assert torch.autograd.gradcheck(bi_wkv, args)


def test_torch_fallback_gradcheck_float64():
    w, u, k, v, _ = make_inputs(1, 21, 2, "wide", 3.0, seed=1)
    args = [x.double().requires_grad_() for x in (w * 0.5, u, k, v)]
    assert torch.autograd.gradcheck(lambda *a: bi_wkv_torch(*a, chunk=8), args)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_native_half_precision(native, dtype):
    w, u, k, v, g = make_inputs(2, 256, 21, "wide", 3.0, seed=5)
    k, v, g = k.to(dtype), v.to(dtype), g.to(dtype)  # the oracle sees the rounded inputs
    ref, scale = oracle(w, u, k, v, g)
    got = run(bi_wkv, w, u, k, v, g, dtype=dtype)
    assert got["y"].dtype == dtype and got["k"].dtype == dtype
    check(got, ref, scale, 2e-2, str(dtype))


def test_native_opcheck(native):
    w, u, k, v, _ = make_inputs(2, 40, 21, "wide", 3.0, seed=2)
    torch.library.opcheck(torch.ops.visionmix.bi_wkv.default, (w, u, k, v))
    args = (w.requires_grad_(), u.requires_grad_(), k.requires_grad_(), v.requires_grad_())
    torch.library.opcheck(torch.ops.visionmix.bi_wkv.default, args)


def test_native_non_contiguous_and_empty(native):
    w, u, k, v, g = make_inputs(2, 33, 20, "small", 3.0, seed=4)
    kt, vt = k.transpose(0, 1).contiguous().transpose(0, 1), v[:, :, :].clone()
    assert not kt.is_contiguous()
    torch.testing.assert_close(bi_wkv(w, u, kt, vt), bi_wkv(w, u, k, v))
    empty = torch.zeros(2, 0, 20)
    assert bi_wkv(w, u, empty, empty).shape == (2, 0, 20)


def test_backend_env_var(monkeypatch):
    w, u, k, v, _ = make_inputs(1, 50, 4, "wide", 3.0, seed=6)
    outs = {}
    for name in ("native", "torch", "dense"):
        monkeypatch.setenv("VISIONMIX_WKV_BACKEND", name)
        assert ops.wkv_backend() == name
        if name != "native" or ops.native_build_error() is None:
            outs[name] = bi_wkv(w, u, k, v)
    for out in outs.values():
        torch.testing.assert_close(out, outs["dense"], atol=1e-5, rtol=1e-5)
    monkeypatch.setenv("VISIONMIX_WKV_BACKEND", "cuda")
    with pytest.raises(ValueError, match="VISIONMIX_WKV_BACKEND"):
        ops.wkv_backend()


def test_failed_build_falls_back_with_one_warning(monkeypatch):
    monkeypatch.delenv("VISIONMIX_WKV_BACKEND", raising=False)
    monkeypatch.setattr(ops, "_native_tried", True)
    monkeypatch.setattr(ops, "_native", None)
    monkeypatch.setattr(ops, "_native_error", "RuntimeError: no compiler")
    monkeypatch.setattr(ops, "_warned", False)
    with pytest.warns(RuntimeWarning, match="failed to build.*no compiler.*fallback"):
        assert ops.wkv_backend() == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w, u, k, v, _ = make_inputs(1, 9, 4, "wide", 3.0, seed=8)
        torch.testing.assert_close(bi_wkv(w, u, k, v), bi_wkv_dense(w, u, k, v))
    monkeypatch.setenv("VISIONMIX_WKV_BACKEND", "native")
    with pytest.raises(RuntimeError, match="no compiler"):
        bi_wkv(w, u, k, v)


@pytest.mark.parametrize("case,error,match", [
    ("k2d", ValueError, r"k must have shape \(B, T, C\)"),
    ("v_shape", ValueError, "v .* must have the shape of k"),
    ("w_shape", ValueError, r"w must have shape \(C,\) = \(4,\)"),
    ("u_shape", ValueError, r"u must have shape \(C,\)"),
    ("dtype_mix", TypeError, "k and v must share a dtype"),
    ("int_k", TypeError, "k and v must share a dtype"),
    ("device", ValueError, "one device"),
])
def test_bad_arguments(case, error, match):
    w, u, k, v, _ = make_inputs(2, 6, 4, "wide", 3.0, seed=9)
    args = {"k2d": (w, u, k[0], v[0]), "v_shape": (w, u, k, v[:, :5]),
            "w_shape": (w[:3], u, k, v), "u_shape": (w, u[None], k, v),
            "dtype_mix": (w, u, k, v.double()), "int_k": (w, u, k.long(), v.long()),
            "device": (w, u, k, v.to("meta"))}[case]
    with pytest.raises(error, match=match):
        bi_wkv(*args)


def test_flops_convention():
    assert bi_wkv_flops(2, 256, 384) == 2 * 13 * 256 * 384


def _cpp_std() -> str:
    # Torch's own extension builds pick the C++ standard its headers need (C++20 since 2.9).
    return "c++20" if "c++20" in inspect.getsource(torch.utils.cpp_extension) else "c++17"


def test_cuda_source_compiles():
    """nvcc -c of the CUDA kernels (no GPU needed); cached by a hash of sources and flags."""
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or cpp_extension.CUDA_HOME
    if not home and Path("/usr/local/cuda-13.0").exists():
        home = "/usr/local/cuda-13.0"
    nvcc = Path(home, "bin", "nvcc") if home else None
    if nvcc is None or not nvcc.exists():
        pytest.skip("nvcc / CUDA_HOME not found")
    includes = cpp_extension.include_paths(device_type="cuda") + [str(Path(home, "include"))]
    import sysconfig

    includes.append(sysconfig.get_paths()["include"])
    cmd = [str(nvcc), "-c", str(loader.CSRC / "bi_wkv_cuda.cu"), f"-std={_cpp_std()}",
           "-arch=sm_80", "-O0", *cpp_extension.COMMON_NVCC_FLAGS, *(f"-I{p}" for p in includes)]
    digest = hashlib.sha256(" ".join(cmd).encode())
    for src in sorted(loader.CSRC.iterdir()):
        digest.update(src.read_bytes())
    out = loader.cache_dir() / "nvcc-check" / f"{digest.hexdigest()[:16]}.o"
    if out.exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd + ["-o", str(out)], capture_output=True, text=True,
                          env={**os.environ, "CUDA_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-4000:]
