"""``grid_cache``: memoise the constant tables mixers derive from a grid (masks, indices, RoPE angles)."""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def grid_cache(maxsize: int = 64) -> Callable[[F], F]:
    """``functools.lru_cache`` for pure functions of (H, W, ..., device, dtype) returning constant tensors.

    The tables are built with autograd off and outside inference mode: a tensor first built while sampling
    under ``torch.inference_mode`` could otherwise never be saved for a later training backward.
    Callers must not modify the returned tensors in place (they are shared).
    """
    def decorate(fn: F) -> F:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(fn)
        def cached(*args, **kwargs):
            with torch.inference_mode(False), torch.no_grad():
                return fn(*args, **kwargs)

        return cached  # type: ignore[return-value]

    return decorate
