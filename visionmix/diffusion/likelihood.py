"""Gaussian KL divergence and the discretised Gaussian decoder likelihood used by the IDDPM bound.

Both return element-wise values in nats; callers average over non-batch dims (``mean_flat``) and divide
by ln 2 to report bits per dimension, as Ho et al. 2020 and Nichol & Dhariwal 2021 ("Improved DDPM") do.
"""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

Number = Union[float, Tensor]


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.mean(dim=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def normal_kl(mean1: Number, logvar1: Number, mean2: Number, logvar2: Number) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) element-wise, in nats (arguments broadcast).

    KL = 1/2 [logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^(-logvar2) - 1].
    Log-variances (not variances) are the inputs so that tiny variances stay representable.
    """
    ref = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one tensor argument")
    mean1, logvar1, mean2, logvar2 = (torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
                                      for a in (mean1, logvar1, mean2, logvar2))
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """Phi(x) ~= 1/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): the tanh approximation IDDPM uses.

    Kept (rather than the exact erf) so decoder NLLs, and hence bits/dim, match the published code.
    Its absolute error is below 2e-4.
    """
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, *, means: Tensor, log_scales: Tensor,
                                        num_levels: int = 256) -> Tensor:
    """log P(x) of 8-bit data under N(means, e^(2 log_scales)) integrated over x's quantisation bin.

    ``x`` holds ``num_levels`` levels rescaled to [-1, 1], so a bin is 2/(num_levels-1) wide:
    P(x) = Phi((x + h - mu)/s) - Phi((x - h - mu)/s) with h = 1/(num_levels-1). The two edge bins reach to
    -inf and +inf, so the probabilities of all levels sum to one. Returns nats, element-wise (the decoder
    term L_0 of the bound, Ho et al. 2020 sec. 3.3). Log-probabilities are floored at log(1e-12).
    """
    if not x.shape == means.shape == log_scales.shape:
        raise ValueError(f"shapes differ: x {tuple(x.shape)}, means {tuple(means.shape)}, "
                         f"log_scales {tuple(log_scales.shape)}")
    half_bin = 1.0 / (num_levels - 1)
    inv_scale = torch.exp(-log_scales)
    cdf_upper = approx_standard_normal_cdf(inv_scale * (x - means + half_bin))
    cdf_lower = approx_standard_normal_cdf(inv_scale * (x - means - half_bin))
    tiny = 1e-12
    log_below_upper = torch.log(cdf_upper.clamp(min=tiny))        # lowest level: P = Phi(upper edge)
    log_above_lower = torch.log((1.0 - cdf_lower).clamp(min=tiny))  # highest level: P = 1 - Phi(lower edge)
    log_in_bin = torch.log((cdf_upper - cdf_lower).clamp(min=tiny))
    edge = 1.0 - half_bin / 2  # any level beyond this is the first / last one
    return torch.where(x < -edge, log_below_upper, torch.where(x > edge, log_above_lower, log_in_bin))
