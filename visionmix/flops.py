"""Parameter and multiply-add counts (fvcore), with handles for the ops fvcore does not know.

fvcore reports one fused multiply-add as one "flop", which is DiT's "Gflops" convention: the numbers
here are GMACs of the matmul-class operators (linear, convolution, attention products, the WKV scan);
normalisations and elementwise operators count zero. This reproduces DiT's published figures (XL/2:
118.62 vs 118.64; B/4: 5.565 vs 5.56). fvcore silently skips operators it has no handle for; a skipped matmul-class operator
would make a table wrong without a word, so ``count_macs`` raises instead.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape

# substrings of operator names whose cost is dominated by multiply-adds
MATMUL_CLASS = ("matmul", "mm", "einsum", "conv", "attention", "linear", "tensordot", "visionmix::", "wkv")


def sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """softmax(Q K^T) V: B*H*N*M*(d + d_v) multiply-adds (q: (..., N, d), k: (..., M, d), v: (..., M, d_v))."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for s in q[:-2]:
        batch *= s
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def bi_wkv_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """Bi-WKV on k: (B, T, C): about 13 multiply-adds per element (two scans and the combination)."""
    from visionmix.ops import bi_wkv_flops

    b, t, c = get_shape(inputs[2])
    return bi_wkv_flops(b, t, c)


def no_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """Normalisations are not multiply-add work in this convention (fvcore would charge 4-5 per element)."""
    return 0


EXTRA_HANDLES: dict[str, Callable] = {
    "aten::layer_norm": no_macs,
    "aten::group_norm": no_macs,
    "aten::batch_norm": no_macs,
    "aten::instance_norm": no_macs,
    "aten::scaled_dot_product_attention": sdpa_macs,
    "visionmix::bi_wkv": bi_wkv_macs,
}


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters); frozen tables such as DiT's pos_embed count in the first."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Multiply-adds of ``model(*inputs)``; raises if a matmul-class operator would go uncounted."""
    with torch.no_grad():  # eager warm-up: lazy work (e.g. building the native WKV op) must not run under jit tracing
        model(*inputs)
    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with warnings.catch_warnings():  # fvcore traces with torch.jit, which now warns it is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        total = analysis.total()
    skipped = {op: n for op, n in analysis.unsupported_ops().items() if any(p in op for p in MATMUL_CLASS)}
    if skipped:
        raise RuntimeError(
            f"fvcore has no handle for these matmul-class operators, so the count would be wrong: {skipped}. "
            "Register one in visionmix.flops.EXTRA_HANDLES."
        )
    return int(total)


def backbone_inputs(backbone: nn.Module, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Denoiser inputs (x, t, y) at the backbone's configured input size."""
    h, w = backbone.input_size
    x = torch.randn(batch, backbone.in_channels, h, w)
    t = torch.full((batch,), 500, dtype=torch.long)
    y = torch.zeros(batch, dtype=torch.long) if getattr(backbone, "num_classes", 0) else None
    return (x, t, y) if y is not None else (x, t)
