"""Plumbing every sampling loop shares: seeded noise, the starting tensor, the device, a progress bar.

All randomness of a loop comes from one ``torch.Generator`` so a (generator seed, model) pair fixes the
samples. Noise is drawn on the generator's own device and then moved, so a CPU generator gives the same
samples whichever device the model runs on.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import torch
import torch.nn as nn
from torch import Tensor

ModelFn = Callable[..., Tensor]
ShapeOrNoise = Union[Sequence[int], torch.Size, Tensor]
T = TypeVar("T")


def randn(shape: Sequence[int], generator: Optional[torch.Generator], device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise from ``generator`` (global RNG when None), returned on ``device``."""
    if generator is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


def rand(shape: Sequence[int], generator: Optional[torch.Generator], device: torch.device | str,
         dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform [0, 1) draws from ``generator`` (global RNG when None), returned on ``device``."""
    if generator is None:
        return torch.rand(tuple(shape), device=device, dtype=dtype)
    return torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


def infer_device(model_fn: ModelFn) -> torch.device:
    """Device of the module behind ``model_fn`` (a module or a bound method such as ``forward_with_cfg``)."""
    module = model_fn if isinstance(model_fn, nn.Module) else getattr(model_fn, "__self__", None)
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
        for tensor in module.buffers():
            return tensor.device
    return torch.device("cpu")


def initial_noise(model_fn: ModelFn, shape_or_noise: ShapeOrNoise, generator: Optional[torch.Generator],
                  device: torch.device | str | None) -> Tensor:
    """The loop's starting x: the given tensor (moved to ``device`` if set) or fresh N(0, I) of ``shape``."""
    if isinstance(shape_or_noise, Tensor):
        return shape_or_noise if device is None else shape_or_noise.to(device)
    device = infer_device(model_fn) if device is None else torch.device(device)
    return randn(shape_or_noise, generator, device)


def progress_bar(steps: Iterable[T], enabled: bool, desc: str, total: Optional[int] = None) -> Iterator[T]:
    """Wrap ``steps`` in a tqdm bar when ``enabled`` (tqdm imported lazily: it is only needed here)."""
    if not enabled:
        return iter(steps)
    from tqdm.auto import tqdm

    return iter(tqdm(steps, desc=desc, total=total))


def broadcast_time(value: Union[float, Tensor], like: Tensor, dtype: torch.dtype) -> Tensor:
    """A (B,) tensor of one timestep for the batch of ``like`` (what every denoiser's ``t`` argument is)."""
    return torch.full((like.shape[0],), float(value), device=like.device, dtype=dtype)
