"""Parameter and multiply-add counts, taken at the dispatcher (``torch.utils.flop_counter``).

The numbers are GMACs of the matmul-class operators (mm / addmm / bmm / baddbmm, convolutions,
attention products, the WKV scan), DiT's "Gflops" convention: one fused multiply-add is one MAC;
normalisations and elementwise operators count zero; ``scaled_dot_product_attention`` costs
``B*H*N*M*(d + d_v)``; ``visionmix::bi_wkv`` costs ``ops.bi_wkv_flops``. This reproduces DiT's
published figures (XL/2: 118.62 vs 118.64; B/4: 5.565 vs 5.56). ``einsum`` / ``matmul`` / ``linear``
are counted as the mm / bmm they lower to (the exact multiply-adds of the contraction torch runs).
The few non-matmul charges of fvcore, which counted these tables before, are kept so that no number
changed: adaptive_avg_pool2d 1 per input element, nearest / bilinear upsampling 1 / 4 per output
element, grid sampling 4 per output element.

Counting works on ``meta`` tensors, so a model built under ``torch.device("meta")`` is counted with
no weight memory, no initialisation and no arithmetic (see :func:`meta_model`); real CPU / CUDA
tensors work too. An operator the counter has no formula for adds zero; a skipped matmul-class
operator would make a table wrong without a word, so ``count_macs`` raises instead.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from visionmix.ops import bi_wkv_flops

aten = torch.ops.aten

# An operator is matmul-class when one of the "_"-separated words of its name is one of these, or
# starts with "conv", or when it belongs to the project's own namespace (custom kernels).
_MATMUL_WORDS = frozenset((
    "mm", "bmm", "addmm", "addbmm", "baddbmm", "mv", "addmv", "dot", "vdot", "matmul", "einsum",
    "tensordot", "linear", "bilinear", "trilinear", "attention", "wkv", "cdist",
))
_PROJECT_NAMESPACES = ("visionmix",)


def is_matmul_class(op_name: str) -> bool:
    """``"aten::bmm"`` -> True, ``"aten::lgamma"`` / ``"aten::cummax"`` / ``"aten::upsample_linear1d"`` -> False."""
    namespace, _, name = op_name.replace(".", "::", 1).rpartition("::")
    name = name.split(".")[0]  # drop an overload name
    if namespace in _PROJECT_NAMESPACES:
        return True
    words = [w for w in name.lower().split("_") if w]
    return any(w in _MATMUL_WORDS or w.startswith("conv") and not w.startswith("convert") for w in words)


# ---------------------------------------------------------------- MAC formulas (shapes in, MACs out)
def sdpa_macs(q: tuple, k: tuple, v: tuple, *args: Any, **kwargs: Any) -> int:
    """softmax(Q K^T) V: B*H*N*M*(d + d_v) multiply-adds (q: (..., N, d), k: (..., M, d), v: (..., M, d_v))."""
    batch = 1
    for s in q[:-2]:
        batch *= s
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def bi_wkv_macs(w: tuple, u: tuple, k: tuple, v: tuple, *args: Any, **kwargs: Any) -> int:
    """Bi-WKV on k: (B, T, C): 13 multiply-adds per element (two scans and the combination)."""
    return bi_wkv_flops(*k)


def addmm_macs(bias: tuple, a: tuple, b: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0] * a[1] * b[1]


def addbmm_macs(bias: tuple, a: tuple, b: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0] * a[1] * a[2] * b[2]


def mv_macs(a: tuple, x: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0] * a[1]


def addmv_macs(bias: tuple, a: tuple, x: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0] * a[1]


def dot_macs(a: tuple, b: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0]


def _int_mm_macs(a: tuple, b: tuple, *args: Any, **kwargs: Any) -> int:
    return a[0] * a[1] * b[1]


# fvcore's charges for three non-matmul operators, kept so that no table changes: 1 per output element of
# nearest upsampling, 4 of bilinear upsampling and of grid sampling (plus 1 per input element of
# adaptive_avg_pool2d, charged by _PoolCharges: a 1x1 pool reaches the dispatcher as a plain mean).
def _numel(shape: Any) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def upsample_nearest_macs(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return _numel(out_shape)


def four_per_output_macs(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 4 * _numel(out_shape)


# Operators whose formulas torch.utils.flop_counter lacks (its own ones cover mm, addmm, bmm, baddbmm,
# convolution and the CUDA attention kernels, at 2 flops per MAC). Keys are operator packets.
MAC_FORMULAS: dict[Any, Callable[..., int]] = {
    torch.ops.visionmix.bi_wkv: bi_wkv_macs,
    aten._scaled_dot_product_flash_attention_for_cpu: sdpa_macs,
    aten._scaled_dot_product_fused_attention_overrideable: sdpa_macs,
    aten._scaled_dot_product_attention_math_for_mps: sdpa_macs,
    aten._addmm_activation: addmm_macs,
    aten.addbmm: addbmm_macs,
    aten.mv: mv_macs,
    aten.addmv: addmv_macs,
    aten.dot: dot_macs,
    aten.vdot: dot_macs,
    aten._int_mm: _int_mm_macs,
    aten.upsample_nearest2d: upsample_nearest_macs,
    aten.upsample_bilinear2d: four_per_output_macs,
    aten.grid_sampler_2d: four_per_output_macs,
    aten.grid_sampler_3d: four_per_output_macs,
    aten.cudnn_grid_sampler: four_per_output_macs,
    aten._grid_sampler_2d_cpu_fallback: four_per_output_macs,
}


def _as_flops(macs: Callable[..., int]) -> Callable[..., int]:
    def flops(*args: Any, **kwargs: Any) -> int:
        return 2 * macs(*args, **kwargs)

    flops.__name__ = macs.__name__
    return flops


class UncountedOpError(RuntimeError):
    """A matmul-class operator ran that the counter has no formula for."""


class _PoolCharges(TorchFunctionMode):
    """fvcore's 1 MAC per input element of ``adaptive_avg_pool2d``, taken where it is called (below,
    a 1x1 output is a ``mean`` like any other)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.pools = (torch.nn.functional.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.pools:
            self.macs += (args[0] if args else kwargs["input"]).numel()
        return func(*args, **(kwargs or {}))


class _OpRecorder(TorchDispatchMode):
    """Records the operators the model calls (so a matmul-class one that the counter would decompose
    into uncounted pieces is caught too), and answers reads of a value out of a ``meta`` tensor
    (``int(y.max())`` in a label check) with 0: the counted work must not depend on the data, and
    meta tensors hold none."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[Any, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func._overloadpacket
        self.seen[packet] = self.seen.get(packet, 0) + 1
        if func is aten._local_scalar_dense.default and args[0].device.type == "meta":
            dtype = args[0].dtype
            return False if dtype == torch.bool else 0.0 if (dtype.is_floating_point or dtype.is_complex) else 0
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _wkv_as_one_op() -> Iterator[None]:
    """Run ``visionmix.ops.bi_wkv`` as the ``visionmix::bi_wkv`` operator whatever backend is configured:
    it is what the convention charges, and on meta tensors its fake kernel needs no native build."""
    key, old = "VISIONMIX_WKV_BACKEND", os.environ.get("VISIONMIX_WKV_BACKEND")
    os.environ[key] = "native"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


class _MetaAutocast(torch.amp.autocast):
    """``torch.autocast(x.device.type, enabled=False)``, the usual fp32 island, rejects ``"meta"``: the
    meta device has no autocast state of its own, so it takes the CPU's."""

    def __init__(self, device_type: str, *args: Any, **kwargs: Any) -> None:
        super().__init__("cpu" if device_type == "meta" else device_type, *args, **kwargs)


@contextlib.contextmanager
def _autocast_accepts_meta() -> Iterator[None]:
    saved = torch.autocast, torch.amp.autocast
    torch.autocast = torch.amp.autocast = _MetaAutocast
    try:
        yield
    finally:
        torch.autocast, torch.amp.autocast = saved


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters); frozen tables such as DiT's pos_embed count in the first."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_macs(model: nn.Module | Callable[..., Any], inputs: tuple[Any, ...]) -> int:
    """Multiply-adds of ``model(*inputs)`` (no grad); raises if a matmul-class operator would go uncounted.

    ``model`` and ``inputs`` may live on the ``meta`` device (nothing is computed, nothing allocated).
    """
    counter = FlopCounterMode(display=False, custom_mapping={op: _as_flops(f) for op, f in MAC_FORMULAS.items()})
    # The counter first tries to decompose every operator it is handed (its formulas are keyed by packet,
    # the operators it receives are overloads): upsample_nearest2d would become index arithmetic worth 0.
    # Keyed by overload too, an operator with a formula is counted as itself.
    for packet, formula in list(counter.flop_registry.items()):
        if isinstance(packet, torch._ops.OpOverloadPacket):
            counter.flop_registry.update({getattr(packet, name): formula for name in packet.overloads()})
    recorder, pools = _OpRecorder(), _PoolCharges()
    # the recorder innermost: it sees each operator as called, before the counter decomposes any
    with torch.no_grad(), _wkv_as_one_op(), _autocast_accepts_meta(), pools, counter, recorder:
        model(*inputs)
    skipped = {str(op): n for op, n in recorder.seen.items()
               if op not in counter.flop_registry and is_matmul_class(str(op))}
    if skipped:
        raise UncountedOpError(
            f"no MAC formula for these matmul-class operators, so the count would be wrong: {skipped}. "
            "Register one in visionmix.flops.MAC_FORMULAS."
        )
    return counter.get_total_flops() // 2 + pools.macs  # the counter's formulas count 2 flops per MAC


def _registries_imported() -> None:
    """Import every registered component now: modules imported under ``torch.device("meta")`` would
    create their module-level tensors on meta."""
    from visionmix.registry import BACKBONES, FFNS, MIXERS, MODELS, OBJECTIVES

    for registry in (MIXERS, FFNS, BACKBONES, MODELS, OBJECTIVES):
        registry.import_from_location()


def meta_model(cfg: Any) -> nn.Module:
    """``build_model(cfg)`` on the meta device: shapes only, no memory, no initialisation cost."""
    from visionmix.registry import build_model

    _registries_imported()
    with torch.device("meta"):
        return build_model(cfg)


def backbone_inputs(backbone: nn.Module, batch: int = 1, device: torch.device | str | None = None
                    ) -> tuple[torch.Tensor, ...]:
    """Denoiser inputs (x, t, y) at the backbone's configured input size, on ``device`` (default: the
    device of the backbone's parameters, so a meta-built backbone gets meta inputs)."""
    if device is None:
        first = next(iter(backbone.parameters()), None)
        device = first.device if first is not None else "cpu"
    h, w = backbone.input_size
    x = torch.randn(batch, backbone.in_channels, h, w, device=device)
    t = torch.full((batch,), 500, dtype=torch.long, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device) if getattr(backbone, "num_classes", 0) else None
    return (x, t, y) if y is not None else (x, t)
