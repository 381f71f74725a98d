"""Noise schedules: beta_t for t = 0..T-1, in float64 numpy (Ho et al. 2020; Nichol & Dhariwal 2021).

alpha_t = 1 - beta_t and alpha_bar_t = prod_{s<=t} alpha_s, so q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0,
(1 - alpha_bar_t) I). Tables stay float64 because 1 - alpha_bar_t and its ratios lose digits in float32.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def linear_betas(num_timesteps: int) -> np.ndarray:
    """Ho et al.'s 1e-4..0.02 over 1000 steps; other T scale both ends by 1000/T (IDDPM's rule).

    The scaling keeps alpha_bar_T roughly the same whatever T is, so a 4000-step and a 1000-step process
    reach the same terminal noise level.
    """
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def betas_for_alpha_bar(num_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous alpha_bar(s), s in [0, 1]: beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta).

    Clipping beta below 1 keeps the last steps from being singular (alpha_bar would reach 0).
    """
    betas = [min(1.0 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
             for i in range(num_timesteps)]
    return np.asarray(betas, dtype=np.float64)


def cosine_alpha_bar(s: float, offset: float = 0.008) -> float:
    """IDDPM's cosine schedule f(s) = cos^2((s + o)/(1 + o) * pi/2); o = 0.008 keeps beta_0 from vanishing."""
    return math.cos((s + offset) / (1.0 + offset) * math.pi / 2) ** 2


def cosine_betas(num_timesteps: int) -> np.ndarray:
    """IDDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17), betas capped at 0.999."""
    return betas_for_alpha_bar(num_timesteps, cosine_alpha_bar)


def scaled_linear_betas(num_timesteps: int) -> np.ndarray:
    """Stable Diffusion's schedule, which U-ViT's latent models were trained with: sqrt(beta) linear from
    sqrt(0.00085) to sqrt(0.012), squared."""
    return np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, num_timesteps, dtype=np.float64) ** 2


_SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas, "squaredcos_cap_v2": cosine_betas,
              "scaled_linear": scaled_linear_betas}


def make_betas(schedule: str, num_timesteps: int) -> np.ndarray:
    """Betas of a named schedule: "linear" (DiT's), "cosine" (alias "squaredcos_cap_v2") or "scaled_linear"."""
    if schedule not in _SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; known: {', '.join(sorted(_SCHEDULES))}")
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    return _SCHEDULES[schedule](num_timesteps)
