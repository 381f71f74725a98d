"""Diffusion objectives and their samplers: IDDPM Gaussian diffusion ("iddpm") and flow matching.

Importing this package registers both in ``visionmix.registry.OBJECTIVES``. Contract (docs/architecture.md):
``training_losses(model_fn, x0, model_kwargs=None, noise=None, t=None) -> {"loss": (B,), ...}``,
``sample_t(batch, device, generator)`` and ``sample(model_fn, shape_or_noise, *, sampler, steps, ...)``.
"""
from .flow import FlowMatching
from .gaussian import GaussianDiffusion
from .likelihood import approx_standard_normal_cdf, discretized_gaussian_log_likelihood, mean_flat, normal_kl
from .respace import respace_betas, space_timesteps
from .schedules import cosine_betas, linear_betas, make_betas

__all__ = ["FlowMatching", "GaussianDiffusion", "approx_standard_normal_cdf", "cosine_betas",
           "discretized_gaussian_log_likelihood", "linear_betas", "make_betas", "mean_flat", "normal_kl",
           "respace_betas", "space_timesteps"]
