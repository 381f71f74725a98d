"""IDDPM Gaussian diffusion as DiT trains and samples it (Nichol & Dhariwal 2021, "Improved DDPM").

Forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), t = 0..T-1, abar_t = prod_{s<=t} (1 - beta_s).
Posterior  q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I) with
    mu~_t   = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
    beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)                       (abar_{-1} := 1).
The denoiser predicts eps; x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) and p(x_{t-1} | x_t) has mean
mu~_t(x0_hat, x_t). Its variance is either fixed (beta_t "large", or beta~_t "small") or learned in range
(IDDPM eq. 15): the model's extra channels v in [-1, 1] give
    log Sigma = f log beta_t + (1 - f) log beta~_t,   f = (v + 1) / 2.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..registry import OBJECTIVES
from .likelihood import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from .respace import SectionCounts, respace_betas, space_timesteps
from .samplers import ModelFn, ShapeOrNoise, broadcast_time, initial_noise, progress_bar, randn
from .schedules import make_betas

@OBJECTIVES.register_module(name="iddpm")
class GaussianDiffusion:
    """Discrete-time eps-prediction diffusion with IDDPM's learned-range variance and hybrid loss.

    Args:
        num_timesteps: T of the training process (1000 in DiT).
        noise_schedule: "linear" (1e-4..0.02 scaled by 1000/T), "cosine" or "scaled_linear" (SD / U-ViT).
        learn_sigma: the model outputs 2C channels [eps, v] and the loss is mse + vb (IDDPM's L_hybrid);
            otherwise it outputs eps only, the loss is mse and the variance is fixed.
        sigma_small: with a fixed variance, use beta~_t instead of beta_t (DiT: False).
        rescale_learned_sigmas: multiply vb by T/1000 (IDDPM's ``RESCALED_MSE``). DiT's ``create_diffusion``
            leaves it False, i.e. plain ``LossType.MSE`` with vb unscaled; at T = 1000 the two agree anyway.
        timestep_respacing: optional section counts (see ``space_timesteps``) applied right away.
        betas: explicit betas (float64), overriding the named schedule.
        timestep_map: for a respaced process, the original timestep each step stands for; the model is
            always called with ``timestep_map[t]``.
    """

    def __init__(self, num_timesteps: int = 1000, noise_schedule: str = "linear", learn_sigma: bool = True,
                 sigma_small: bool = False, rescale_learned_sigmas: bool = False,
                 timestep_respacing: Optional[SectionCounts] = None, betas: Optional[Sequence[float]] = None,
                 timestep_map: Optional[Sequence[int]] = None):
        betas = make_betas(noise_schedule, num_timesteps) if betas is None else np.asarray(betas, np.float64)
        timestep_map = np.arange(len(betas)) if timestep_map is None else np.asarray(timestep_map, np.int64)
        if betas.ndim != 1 or not np.all((betas > 0) & (betas < 1)):
            # beta = 1 (e.g. the linear schedule with T <= 20) zeroes alpha_bar and every table divides by it
            raise ValueError("betas must be a 1-D array in the open interval (0, 1)")
        if timestep_map.shape != betas.shape:
            raise ValueError(f"timestep_map has {len(timestep_map)} entries for {len(betas)} betas")
        if timestep_respacing not in (None, ""):
            kept = space_timesteps(len(betas), timestep_respacing)
            betas, timestep_map = respace_betas(np.cumprod(1.0 - betas), kept), timestep_map[kept]
        self.noise_schedule = noise_schedule
        self.learn_sigma, self.sigma_small = learn_sigma, sigma_small
        self.rescale_learned_sigmas = rescale_learned_sigmas
        self.timestep_map = timestep_map
        self._set_tables(betas)

    def _set_tables(self, betas: np.ndarray) -> None:
        self.num_timesteps = len(betas)
        self.betas = betas
        self.log_betas = np.log(betas)
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        self.alphas_cumprod = abar
        self.alphas_cumprod_prev = np.concatenate([[1.0], abar[:-1]])
        self.sqrt_alphas_cumprod = np.sqrt(abar)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - abar)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / abar)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / abar - 1.0)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - abar)
        # beta~_0 = 0: its log is clipped to beta~_1 (to beta_0 for a 1-step process) so the learned-range
        # interpolation and the KL at t = 0 stay finite.
        floor = self.posterior_variance[1] if len(betas) > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.concatenate([[floor], self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - abar)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - abar)
        # "fixed large" uses beta~_1 at t = 0 instead of beta_0: a better decoder likelihood (IDDPM).
        self.fixed_large_log_variance = np.log(np.concatenate([[floor], betas[1:]]))
        self._cache: dict[tuple[str, str], Tensor] = {}

    def __repr__(self) -> str:
        respaced = not np.array_equal(self.timestep_map, np.arange(self.num_timesteps))
        where = f", model t in [{self.timestep_map[0]}, {self.timestep_map[-1]}]" if respaced else ""
        return (f"GaussianDiffusion(T={self.num_timesteps}, schedule={self.noise_schedule!r}, "
                f"learn_sigma={self.learn_sigma}{where})")

    # ------------------------------------------------------------------ tables
    def _extract(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """table[t] cast to ``like``'s dtype, shaped (B, 1, ..., 1) to broadcast against ``like``."""
        key = (name, str(t.device))
        if key not in self._cache:  # float64 lookups, one upload per device (MPS has no float64)
            dtype = torch.float32 if t.device.type == "mps" else torch.float64
            self._cache[key] = torch.as_tensor(getattr(self, name), dtype=dtype, device=t.device)
        values = self._cache[key].index_select(0, t.long())  # much faster than table[t] on CPU
        return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The original timesteps the denoiser is called with for this process's steps ``t``."""
        key = ("timestep_map", str(t.device))
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.timestep_map, dtype=torch.long, device=t.device)
        return self._cache[key].index_select(0, t.long())

    def sample_t(self, batch: int, device: Union[torch.device, str, None] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """Uniform training timesteps in {0, ..., T-1}, shape (batch,), long."""
        draw_on = generator.device if generator is not None else device
        t = torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=draw_on)
        return t.to(device) if device is not None else t

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        noise = torch.randn_like(x0) if noise is None else noise
        return (self._extract("sqrt_alphas_cumprod", t, x0) * x0
                + self._extract("sqrt_one_minus_alphas_cumprod", t, x0) * noise)

    def q_posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(mu~_t, beta~_t, clipped log beta~_t) of q(x_{t-1} | x_t, x_0); variances shaped (B, 1, ...)."""
        mean = (self._extract("posterior_mean_coef1", t, x_t) * x0
                + self._extract("posterior_mean_coef2", t, x_t) * x_t)
        return (mean, self._extract("posterior_variance", t, x_t),
                self._extract("posterior_log_variance_clipped", t, x_t))

    def predict_x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x0_hat = x_t / sqrt(abar_t) - sqrt(1/abar_t - 1) eps."""
        return (self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                - self._extract("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)

    def predict_eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """The eps for which ``predict_x0_from_eps`` gives ``x0`` (used after clipping x0_hat)."""
        return ((self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t - x0)
                / self._extract("sqrt_recipm1_alphas_cumprod", t, x_t))

    # ------------------------------------------------------------------ reverse process
    def split_output(self, output: Tensor, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """Model output -> (eps, v): v is the learned-range variance channels, None for a fixed variance."""
        channels = x.shape[1] * (2 if self.learn_sigma else 1)
        if output.shape != (x.shape[0], channels, *x.shape[2:]):
            raise ValueError(f"with learn_sigma={self.learn_sigma} the model must output "
                             f"{(x.shape[0], channels, *x.shape[2:])}, got {tuple(output.shape)}")
        if not self.learn_sigma:
            return output, None
        eps, v = output.chunk(2, dim=1)
        return eps, v

    def p_mean_variance_from_output(self, output: Tensor, x: Tensor, t: Tensor,
                                    clip_denoised: bool = False) -> dict[str, Tensor]:
        """p(x_{t-1} | x_t) from a model output: keys mean, variance, log_variance, pred_xstart (clamped to
        [-1, 1] if ``clip_denoised``) and eps (the model's raw prediction). A fixed variance comes shaped
        (B, 1, ..., 1), broadcastable to x; a learned one has x's shape."""
        eps, v = self.split_output(output, x)
        if v is None:
            log_variance = self._extract("posterior_log_variance_clipped" if self.sigma_small
                                         else "fixed_large_log_variance", t, x)  # (B, 1, ...): broadcasts
        else:
            frac = (v + 1) / 2  # v in [-1, 1] spans [log beta~_t, log beta_t] (IDDPM eq. 15)
            log_variance = (frac * self._extract("log_betas", t, x)
                            + (1 - frac) * self._extract("posterior_log_variance_clipped", t, x))
        pred_xstart = self.predict_x0_from_eps(x, t, eps)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return dict(mean=mean, variance=torch.exp(log_variance), log_variance=log_variance,
                    pred_xstart=pred_xstart, eps=eps)

    def p_mean_variance(self, model_fn: ModelFn, x: Tensor, t: Tensor, clip_denoised: bool = False,
                        model_kwargs: Optional[dict[str, Any]] = None) -> dict[str, Tensor]:
        """Call the denoiser at the original timesteps of ``t`` and return p(x_{t-1} | x_t) (see above)."""
        output = model_fn(x, self.model_timesteps(t), **(model_kwargs or {}))
        return self.p_mean_variance_from_output(output, x, t, clip_denoised)

    # ------------------------------------------------------------------ training
    def vb_terms_bpd(self, output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Per-sample term of the variational bound in bits/dim (Ho et al. 2020 eq. 5).

        L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0; L_0 = -log p(x_0 | x_1), the
        discretised Gaussian decoder, at t == 0.
        """
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        p = self.p_mean_variance_from_output(output, x_t, t)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, p["mean"], p["log_variance"])) / math.log(2.0)
        log_scales = (0.5 * p["log_variance"]).expand_as(x0)  # a fixed variance comes as (B, 1, ...)
        nll = -discretized_gaussian_log_likelihood(x0, means=p["mean"], log_scales=log_scales)
        return torch.where(t == 0, mean_flat(nll) / math.log(2.0), kl)

    def training_losses(self, model_fn: ModelFn, x0: Tensor, model_kwargs: Optional[dict[str, Any]] = None,
                        noise: Optional[Tensor] = None, t: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Per-sample losses (B,): "mse" = mean (eps - eps_hat)^2, "vb" (learn_sigma only), "loss" = their sum.

        This is IDDPM's L_hybrid = L_simple + lambda L_vlb. vb sees the eps channels detached, so it trains
        the variance only and mse trains the mean. vb is one uniformly drawn term L_t of the bound, so
        L_vlb ~ T L_t and lambda = 1/1000 gives (T/1000) L_t: that is ``rescale_learned_sigmas`` (IDDPM's
        RESCALED_MSE); DiT (plain MSE) uses L_t unscaled, the same thing at T = 1000. ``t`` are step
        indices of this process (drawn uniformly when None); the model sees ``timestep_map[t]``.
        """
        t = self.sample_t(x0.shape[0], x0.device) if t is None else t.to(x0.device)
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        output = model_fn(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        eps, v = self.split_output(output, x0)
        terms = {"mse": mean_flat((noise - eps) ** 2)}
        if v is not None:
            frozen = torch.cat([eps.detach(), v], dim=1)  # stop-gradient: vb must not move the mean
            vb = self.vb_terms_bpd(frozen, x0, x_t, t)
            terms["vb"] = vb * (self.num_timesteps / 1000.0) if self.rescale_learned_sigmas else vb
        terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
        return terms

    # ------------------------------------------------------------------ sampling
    def respaced(self, section_counts: SectionCounts) -> "GaussianDiffusion":
        """The process over a subset of this one's steps (``space_timesteps``), model calls mapped back."""
        kept = space_timesteps(self.num_timesteps, section_counts)
        return GaussianDiffusion(noise_schedule=self.noise_schedule, learn_sigma=self.learn_sigma,
                                 sigma_small=self.sigma_small, rescale_learned_sigmas=self.rescale_learned_sigmas,
                                 betas=respace_betas(self.alphas_cumprod, kept),
                                 timestep_map=self.timestep_map[kept])

    def p_sample(self, model_fn: ModelFn, x: Tensor, t: Tensor, *, model_kwargs: Optional[dict] = None,
                 clip_denoised: bool = False, generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        """Ancestral step x_{t-1} = mean + sigma z, z ~ N(0, I) from ``generator``; no noise where t == 0."""
        p = self.p_mean_variance(model_fn, x, t, clip_denoised, model_kwargs)
        noise = randn(x.shape, generator, x.device, x.dtype)
        keep = (t != 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return dict(sample=p["mean"] + keep * torch.exp(0.5 * p["log_variance"]) * noise,
                    pred_xstart=p["pred_xstart"])

    def ddim_sample(self, model_fn: ModelFn, x: Tensor, t: Tensor, *, model_kwargs: Optional[dict] = None,
                    clip_denoised: bool = False, eta: float = 0.0,
                    generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        """DDIM step (Song et al. 2021, eq. 12) from step t to the previous kept step:

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps_hat + s z,
        s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev); eta = 0 is deterministic,
        eta = 1 has DDPM's beta~ variance. The learned variance channels are ignored.
        """
        p = self.p_mean_variance(model_fn, x, t, clip_denoised, model_kwargs)
        abar = self._extract("alphas_cumprod", t, x)
        abar_prev = self._extract("alphas_cumprod_prev", t, x)
        sigma = eta * torch.sqrt((1 - abar_prev) / (1 - abar)) * torch.sqrt(1 - abar / abar_prev)
        # eps re-derived from x0_hat: consistent with a clipped x0_hat, and bit-identical to IDDPM's DDIM
        eps = self.predict_eps_from_x0(x, t, p["pred_xstart"])
        sample = abar_prev.sqrt() * p["pred_xstart"] + torch.sqrt(1 - abar_prev - sigma ** 2) * eps
        if eta > 0:  # sigma is already 0 at t == 0 (abar_prev = 1); eta = 0 draws nothing
            sample = sample + sigma * randn(x.shape, generator, x.device, x.dtype)
        return dict(sample=sample, pred_xstart=p["pred_xstart"])

    def dpmpp_2m_loop(self, model_fn: ModelFn, x: Tensor, *, model_kwargs: Optional[dict] = None,
                      clip_denoised: bool = False, progress: bool = True) -> Tensor:
        """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), deterministic, over this process's steps.

        With alpha = sqrt(abar), sigma = sqrt(1 - abar) and lambda = log(alpha / sigma), one step from s to
        the next step t uses the data prediction x0_hat:

            x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) D,   h = lambda_t - lambda_s,
            D = (1 + 1 / (2r)) x0_hat_s - 1 / (2r) x0_hat_prev,   r = h_prev / h,

        with D = x0_hat_s on the first step (that step is DDIM). The last step, into abar = 1 (sigma = 0),
        returns x0_hat: first order there, as the reference implementations do for few steps.
        """
        abar = np.append(self.alphas_cumprod[::-1], 1.0)  # the visited steps T-1 .. 0, then the data
        alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
        with np.errstate(divide="ignore"):
            lam = np.log(alpha) - np.log(sigma)
        last = self.num_timesteps - 1
        previous = None  # (x0_hat, h) of the step before
        for n in progress_bar(range(self.num_timesteps), progress, f"dpmpp_2m ({self.num_timesteps} steps)"):
            t = broadcast_time(last - n, x, torch.long)
            x0 = self.p_mean_variance(model_fn, x, t, clip_denoised, model_kwargs)["pred_xstart"]
            if n == last:
                return x0
            h = float(lam[n + 1] - lam[n])
            d = x0
            if previous is not None:
                weight = 1.0 / (2.0 * previous[1] / h)
                d = (1.0 + weight) * x0 - weight * previous[0]
            x = float(sigma[n + 1] / sigma[n]) * x - float(alpha[n + 1] * math.expm1(-h)) * d
            previous = (x0, h)
        return x

    def sample(self, model_fn: ModelFn, shape_or_noise: ShapeOrNoise, *, sampler: str = "ddpm",
               steps: Optional[SectionCounts] = 250, model_kwargs: Optional[dict[str, Any]] = None,
               generator: Optional[torch.Generator] = None, progress: bool = True, clip_denoised: bool = False,
               device: Union[torch.device, str, None] = None, eta: float = 0.0) -> Tensor:
        """Draw x_0 from x_T ~ N(0, I) (or the given noise) with "ddpm" (ancestral), "ddim" (eta) or
        "dpmpp_2m" (DPM-Solver++(2M), deterministic: U-ViT's and DiCo's few-step sampler family).

        ``steps``: an int K respaces to K evenly spread steps including T-1 and 0 (DiT's ``str(K)``, used
        by both samplers so they visit the same timesteps); a string/list goes to ``respaced`` as is (e.g.
        "ddim50" for DDIM's 0, 20, 40, ... striding); None or K == T uses every step. ``model_fn`` may be
        ``backbone.forward_with_cfg`` on a doubled batch (``model_kwargs=dict(y=..., cfg_scale=...)``).
        Returns data space, unclipped unless ``clip_denoised`` (clamps x0_hat to [-1, 1] at every step).
        """
        if sampler not in ("ddpm", "ddim", "dpmpp_2m"):
            raise ValueError(f"unknown sampler {sampler!r} for GaussianDiffusion; use 'ddpm', 'ddim' or 'dpmpp_2m'")
        if sampler != "ddim" and eta != 0.0:
            raise ValueError(f"eta is DDIM's noise scale; the {sampler!r} sampler does not take it")
        process = self
        if steps is not None and steps != self.num_timesteps:
            process = self.respaced(steps)
        x = initial_noise(model_fn, shape_or_noise, generator, device)
        if sampler == "dpmpp_2m":
            with torch.no_grad():
                return process.dpmpp_2m_loop(model_fn, x, model_kwargs=model_kwargs, clip_denoised=clip_denoised,
                                             progress=progress)
        indices = range(process.num_timesteps - 1, -1, -1)
        with torch.no_grad():
            for i in progress_bar(indices, progress, f"{sampler} ({process.num_timesteps} steps)"):
                t = broadcast_time(i, x, torch.long)
                if sampler == "ddpm":
                    x = process.p_sample(model_fn, x, t, model_kwargs=model_kwargs, clip_denoised=clip_denoised,
                                         generator=generator)["sample"]
                else:
                    x = process.ddim_sample(model_fn, x, t, model_kwargs=model_kwargs,
                                            clip_denoised=clip_denoised, eta=eta, generator=generator)["sample"]
        return x
