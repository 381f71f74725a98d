r"""Bidirectional WKV operator of the Bi-RWKV token mixer.

Diffusion-RWKV (Fei et al., 2024, "Diffusion-RWKV: Scaling RWKV-Like Architectures for Diffusion
Models") and Vision-RWKV (Duan et al., 2024, "Vision-RWKV: Efficient and Scalable Visual
Perception with RWKV-Like Architectures") mix tokens with, per batch element and channel,

.. math::

    y_t = \frac{\sum_{i \ne t} e^{-(|t-i|-1) w + k_i} v_i + e^{u + k_t} v_t}
               {\sum_{i \ne t} e^{-(|t-i|-1) w + k_i} + e^{u + k_t}},

a softmax over keys ``i`` with logits ``-(|t-i|-1) w + k_i`` off the diagonal and ``u + k_t`` on it.

Shapes: ``w, u``: ``(C,)``, already divided by ``T`` by the caller; ``k, v``: ``(B, T, C)``.
The output has the shape and dtype of ``k``; float16 / bfloat16 inputs are accumulated in float32.
``w`` may be negative (distant tokens then weigh more) and ``k`` may be large: the native kernels
(``csrc/``) work in O(T) time and memory with scaled states that cannot overflow, and give exact
gradients for ``w, u, k, v``.

Backends: ``native`` (C++ / CUDA, built on first use), ``torch`` (chunked pure PyTorch, used with a
warning when the native build fails) and ``dense`` (the O(T^2) softmax). The environment variable
``VISIONMIX_WKV_BACKEND=native|torch|dense`` forces one; :func:`wkv_backend` reports the active one.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import loader
from .reference import bi_wkv_dense, bi_wkv_torch

__all__ = ["bi_wkv", "bi_wkv_dense", "bi_wkv_torch", "bi_wkv_flops", "wkv_backend",
           "native_build_error"]

BACKENDS = ("native", "torch", "dense")
CHUNK = 32  # kChunk of csrc/bi_wkv_scan.h: lse_ref holds one value per chunk
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_native = None  # the torch.ops.visionmix_native namespace once the extension loads
_native_error: Optional[str] = None
_native_tried = False
_warned = False


def _load_native():
    global _native, _native_error, _native_tried
    if not _native_tried:
        _native_tried = True
        try:
            loader.load_native()
            _native = torch.ops.visionmix_native
            if _native.chunk_size() != CHUNK:
                raise RuntimeError(f"extension chunk {_native.chunk_size()} != {CHUNK}; stale build?")
        except Exception as exc:  # a failed build of any kind falls back to torch
            _native = None
            _native_error = str(exc) if isinstance(exc, loader.NativeBuildError) else _summarise(exc)
    return _native


def _summarise(exc: Exception) -> str:
    """One line out of a (possibly pages long) compiler log: its first error, else its end."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("FAILED")]
    detail = (errors[1] if len(errors) > 1 and errors[0].startswith("Error building") else
              errors[0] if errors else lines[-1] if lines else "")
    return f"{type(exc).__name__}: {detail[:300]}"


def native_build_error() -> Optional[str]:
    """Why the native extension is unavailable (``None`` if it loads)."""
    _load_native()
    return _native_error


def wkv_backend() -> str:
    """The backend :func:`bi_wkv` uses now: the forced one, else ``native`` if it builds."""
    forced = os.environ.get("VISIONMIX_WKV_BACKEND", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"VISIONMIX_WKV_BACKEND={forced!r}: expected one of {BACKENDS}")
        return forced
    if _load_native() is not None:
        return "native"
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"visionmix.ops: the native Bi-WKV extension failed to build ({_native_error}); "
            "using the slower pure-PyTorch fallback (bi_wkv_torch). Set VISIONMIX_WKV_BACKEND=torch "
            "to silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
    return "torch"


def _require_native():
    module = _load_native()
    if module is None:
        raise RuntimeError(f"visionmix.ops: native Bi-WKV extension unavailable: {_native_error}")
    return module


def _check(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> None:
    for name, x in (("w", w), ("u", u), ("k", k), ("v", v)):
        if not isinstance(x, Tensor):
            raise TypeError(f"bi_wkv: {name} must be a Tensor, got {type(x).__name__}")
    if k.dim() != 3:
        raise ValueError(f"bi_wkv: k must have shape (B, T, C), got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"bi_wkv: v {tuple(v.shape)} must have the shape of k {tuple(k.shape)}")
    C = k.shape[2]
    for name, x in (("w", w), ("u", u)):
        if x.shape != (C,):
            raise ValueError(f"bi_wkv: {name} must have shape (C,) = ({C},), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"bi_wkv: {name} must be floating point, got {x.dtype}")
    if k.dtype not in _FLOAT_TYPES or v.dtype != k.dtype:
        raise TypeError(f"bi_wkv: k and v must share a dtype among {_FLOAT_TYPES}, "
                        f"got {k.dtype} and {v.dtype}")
    devices = {x.device for x in (w, u, k, v)}
    if len(devices) != 1:
        raise ValueError(f"bi_wkv: all inputs must be on one device, got {sorted(map(str, devices))}")


@torch.library.custom_op("visionmix::bi_wkv", mutates_args=())
def _bi_wkv_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Native forward: ``y`` in the accumulation dtype (float32 for half inputs; the backward pass
    needs it at that precision) and the log-normaliser of every query, lse = lse_ref (one value
    per CHUNK queries) + lse_off."""
    y, lse_off, lse_ref = _require_native().bi_wkv_forward(w, u, k, v)
    return y, lse_off, lse_ref


@_bi_wkv_op.register_fake
def _(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    B, T, C = k.shape
    acc = torch.float64 if k.dtype == torch.float64 else torch.float32
    n = (T + CHUNK - 1) // CHUNK
    return tuple(k.new_empty(shape, dtype=acc) for shape in ((B, T, C), (B, T, C), (B, n, C)))


@torch.library.custom_op("visionmix::bi_wkv_backward", mutates_args=())
def _bi_wkv_backward_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor, y: Tensor, grad_y: Tensor,
                        lse_off: Tensor, lse_ref: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    dw, du, dk, dv = _require_native().bi_wkv_backward(w, u, k, v, y, grad_y, lse_off, lse_ref)
    return dw, du, dk, dv


@_bi_wkv_backward_op.register_fake
def _(w: Tensor, u: Tensor, k: Tensor, v: Tensor, y: Tensor, grad_y: Tensor, lse_off: Tensor,
      lse_ref: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return torch.empty_like(w), torch.empty_like(u), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output) -> None:
    y, lse_off, lse_ref = output
    ctx.save_for_backward(*inputs, y, lse_off, lse_ref)
    ctx.mark_non_differentiable(lse_off, lse_ref)


def _backward(ctx, grad_y: Optional[Tensor], _g_off, _g_ref):
    w, u, k, v, y, lse_off, lse_ref = ctx.saved_tensors
    if grad_y is None:
        return None, None, None, None
    return _bi_wkv_backward_op(w, u, k, v, y, grad_y.to(y.dtype), lse_off, lse_ref)


_bi_wkv_op.register_autograd(_backward, setup_context=_setup_context)


def bi_wkv(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Bidirectional WKV: ``y`` of shape and dtype of ``k`` (see the module docstring)."""
    _check(w, u, k, v)
    backend = wkv_backend()
    if backend == "native":
        return _bi_wkv_op(w, u, k, v)[0].to(k.dtype)
    if backend == "torch":
        return bi_wkv_torch(w, u, k, v)
    return bi_wkv_dense(w, u, k, v, dtype=torch.promote_types(k.dtype, torch.float32))


def bi_wkv_flops(batch: int, length: int, channels: int) -> int:
    """Multiply-adds charged to one Bi-WKV call in flop tables: 13 * T * C per batch element."""
    return 13 * int(batch) * int(length) * int(channels)
