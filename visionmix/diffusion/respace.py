"""Timestep respacing (Nichol & Dhariwal 2021, sec. 4): sample with K of the T training steps.

Keeping timesteps k_0 < k_1 < ... < k_{K-1} of a process with cumulative products alpha_bar defines a new
K-step process with the *same* marginals q(x_{k_i} | x_0): its betas are re-derived from the kept products,

    beta'_i = 1 - alpha_bar[k_i] / alpha_bar[k_{i-1}],   alpha_bar[k_{-1}] := 1,

so prod_{j<=i} (1 - beta'_j) = alpha_bar[k_i] exactly. The denoiser was trained on the original
timesteps, so step i of the new process must call it with k_i (the "timestep map").
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence, Union

import numpy as np

SectionCounts = Union[str, int, Sequence[int]]


def _ddim_stride(num_timesteps: int, count: int) -> list[int]:
    """DDIM's fixed striding 0, s, 2s, ...: the smallest integer s giving exactly ``count`` steps."""
    for stride in range(1, num_timesteps + 1):
        if math.ceil(num_timesteps / stride) == count:
            return list(range(0, num_timesteps, stride))
    raise ValueError(f"no integer stride gives exactly {count} of {num_timesteps} steps")


def _spread(size: int, count: int) -> list[int]:
    """``count`` offsets in [0, size-1], evenly spread and including both ends.

    The offset is accumulated step by step and rounded with Python's round() (half to even): this picks
    exactly the timesteps IDDPM/DiT pick, so samples match checkpoints' published settings.
    """
    if count > size:
        raise ValueError(f"cannot take {count} steps from a section of {size}")
    stride = (size - 1) / (count - 1) if count > 1 else 0.0
    offsets, position = [], 0.0
    for _ in range(count):
        offsets.append(round(position))
        position += stride
    return offsets


def space_timesteps(num_timesteps: int, section_counts: SectionCounts) -> list[int]:
    """Sorted original timesteps to keep.

    ``section_counts``:
      * ``"ddimN"``: DDIM's stride (Song et al. 2021): 0, s, 2s, ... with N entries;
      * ``N`` or ``"N"``: N steps evenly spread over [0, T-1], both ends included (DiT's sampling default);
      * ``[n_1, n_2, ...]`` or ``"n_1,n_2,..."``: split [0, T) into equal sections (the first T mod m get one
        extra step) and spread n_j steps evenly in section j.
    """
    if isinstance(section_counts, str):
        spec = section_counts.strip()
        if spec.startswith("ddim"):
            return _ddim_stride(num_timesteps, int(spec[len("ddim"):]))
        counts = [int(c) for c in spec.split(",")]
    elif isinstance(section_counts, numbers.Integral):
        counts = [section_counts]
    else:
        counts = [int(c) for c in section_counts]
    if not counts or any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(f"bad section counts {section_counts!r}")
    base, extra = divmod(num_timesteps, len(counts))
    kept, start = [], 0
    for j, count in enumerate(counts):
        size = base + (1 if j < extra else 0)
        kept += [start + offset for offset in _spread(size, count)]
        start += size
    return sorted(set(kept))


def respace_betas(alphas_cumprod: np.ndarray, kept: Sequence[int]) -> np.ndarray:
    """beta'_i = 1 - alpha_bar[k_i] / alpha_bar[k_{i-1}] (float64) for sorted kept timesteps k."""
    kept = np.asarray(kept, dtype=np.int64)
    if kept.ndim != 1 or len(kept) == 0 or np.any(np.diff(kept) <= 0):
        raise ValueError("kept timesteps must be a non-empty strictly increasing sequence")
    kept_alpha_bar = np.asarray(alphas_cumprod, dtype=np.float64)[kept]
    previous = np.concatenate([[1.0], kept_alpha_bar[:-1]])
    return 1.0 - kept_alpha_bar / previous
