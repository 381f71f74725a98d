"""Flow matching on SiT's linear interpolant (Lipman et al. 2023; Ma et al. 2024, "SiT").

Time runs from noise to data (SiT's convention): with noise x_0 ~ N(0, I) and data x_1,

    x_t = t x_1 + (1 - t) x_0,   u_t = dx_t/dt = x_1 - x_0,   t in [0, 1].

The denoiser regresses the velocity: loss = mean over dims of (v(x_t, t) - (x_1 - x_0))^2, t ~ U[eps, 1-eps].
Its minimiser is v*(x, t) = E[x_1 - x_0 | x_t = x], whose ODE dx/dt = v* carries N(0, I) at t = 0 to the
data at t = 1. The model is called with the continuous t in [0, 1] itself, not rescaled to [0, 1000):
visionmix's timestep embedder takes fractional t, as SiT's (DiT's) does.

For the SDE sampler the score follows from the velocity: x_0 = x_t - t v*, so
    s(x, t) = grad log p_t(x) = -E[x_0 | x_t] / (1 - t) = (t v - x) / (1 - t).
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor

from ..registry import OBJECTIVES
from .likelihood import mean_flat
from .samplers import ModelFn, ShapeOrNoise, broadcast_time, initial_noise, progress_bar, rand, randn

_ALIASES = {"ode": "heun", "euler_maruyama": "sde"}


@OBJECTIVES.register_module(name="flow_matching")
class FlowMatching:
    """Velocity-prediction flow matching on the linear path, with Euler / Heun ODE and Euler-Maruyama SDE.

    Args:
        train_eps: t is drawn from U[train_eps, 1 - train_eps]; SiT uses 0 for velocity on this path
            (the velocity target is bounded everywhere).
        diffusion_norm: scale c of the SDE sampler's diffusion coefficient w(t) = c (1 - t) (see ``sample``).
    """

    def __init__(self, train_eps: float = 0.0, diffusion_norm: float = 1.0):
        if not 0.0 <= train_eps < 0.5:
            raise ValueError(f"train_eps must be in [0, 0.5), got {train_eps}")
        self.train_eps, self.diffusion_norm = train_eps, diffusion_norm

    def __repr__(self) -> str:
        return f"FlowMatching(path='linear', train_eps={self.train_eps}, diffusion_norm={self.diffusion_norm})"

    # ------------------------------------------------------------------ path
    def sample_t(self, batch: int, device: Union[torch.device, str, None] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """t ~ U[train_eps, 1 - train_eps], shape (batch,), float32."""
        u = rand((batch,), generator, device or "cpu")
        return self.train_eps + (1.0 - 2.0 * self.train_eps) * u

    @staticmethod
    def interpolate(noise: Tensor, data: Tensor, t: Tensor) -> Tensor:
        """x_t = t data + (1 - t) noise, t of shape (B,)."""
        t = t.to(data.dtype).reshape(-1, *([1] * (data.ndim - 1)))
        return t * data + (1 - t) * noise

    @staticmethod
    def velocity_target(noise: Tensor, data: Tensor) -> Tensor:
        """u_t = data - noise (the same at every t on the linear path)."""
        return data - noise

    @staticmethod
    def score_from_velocity(velocity: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """grad log p_t(x) = (t v - x) / (1 - t); undefined at t = 1 (the data end)."""
        t = t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return (t * velocity - x) / (1 - t)

    def velocity(self, model_fn: ModelFn, x: Tensor, t: Tensor,
                 model_kwargs: Optional[dict[str, Any]] = None) -> Tensor:
        """v(x, t): the model output, its first C channels when it outputs 2C (a learn_sigma backbone)."""
        out = model_fn(x, t, **(model_kwargs or {}))
        if out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]
        if out.shape != x.shape:
            raise ValueError(f"the model must output {tuple(x.shape)} (or twice the channels), got {tuple(out.shape)}")
        return out

    # ------------------------------------------------------------------ training
    def training_losses(self, model_fn: ModelFn, x0: Tensor, model_kwargs: Optional[dict[str, Any]] = None,
                        noise: Optional[Tensor] = None, t: Optional[Tensor] = None) -> dict[str, Tensor]:
        """{"loss": mean over dims of (v(x_t, t) - (x_1 - x_0))^2}, shape (B,).

        ``x0`` is the *data* sample (the objective contract's name; it is x_1 in SiT's notation above);
        ``noise`` is x_0; ``t`` are continuous times in [0, 1], drawn when None.
        """
        data = x0
        t = self.sample_t(data.shape[0], data.device) if t is None else t.to(data.device)
        noise = torch.randn_like(data) if noise is None else noise
        x_t = self.interpolate(noise, data, t)
        v = self.velocity(model_fn, x_t, t, model_kwargs)
        return {"loss": mean_flat((v - self.velocity_target(noise, data)) ** 2)}

    # ------------------------------------------------------------------ sampling
    def sample(self, model_fn: ModelFn, shape_or_noise: ShapeOrNoise, *, sampler: str = "sde", steps: int = 250,
               model_kwargs: Optional[dict[str, Any]] = None, generator: Optional[torch.Generator] = None,
               progress: bool = True, clip_denoised: bool = False, device: Union[torch.device, str, None] = None,
               eta: float = 0.0) -> Tensor:
        """Integrate from t = 0 (noise) to t = 1 (data) on the grid t_i = i / steps.

        * "euler": x += h v(x, t_i)                          (``steps`` model calls)
        * "heun" (alias "ode"): Euler predictor, trapezoidal corrector with v at t_{i+1}; second order
          (2 ``steps`` calls). SiT's ODE default is adaptive dopri5; Heun is its fixed-step counterpart.
        * "sde" (alias "euler_maruyama"): Euler-Maruyama on dx = [v + w(t) s(x, t)] dt + sqrt(2 w(t)) dW,
          which has the same marginals p_t as the ODE for any w >= 0. w(t) = c (1 - t) is SiT's default
          "sigma" form (sigma_t = 1 - t on this path), so w s = c (t v - x) stays finite up to t = 1. The
          last step adds no noise (SiT's "Mean" last step, here of size 1/steps rather than 0.04).
        ``clip_denoised`` clamps the result to [-1, 1]; ``eta`` exists for DDIM and must stay 0.
        """
        sampler = _ALIASES.get(sampler, sampler)
        if sampler not in ("euler", "heun", "sde"):
            raise ValueError(f"unknown sampler {sampler!r} for FlowMatching; use euler, heun (ode) or sde")
        if eta != 0.0:
            raise ValueError("eta is DDIM's noise scale; flow-matching samplers do not take it")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        x = initial_noise(model_fn, shape_or_noise, generator, device)
        h = 1.0 / steps
        with torch.no_grad():
            for i in progress_bar(range(steps), progress, f"{sampler} ({steps} steps)"):
                t = broadcast_time(i * h, x, torch.float32)
                v = self.velocity(model_fn, x, t, model_kwargs)
                if sampler == "euler":
                    x = x + h * v
                elif sampler == "heun":
                    x_pred = x + h * v
                    v_next = self.velocity(model_fn, x_pred, broadcast_time((i + 1) * h, x, torch.float32),
                                           model_kwargs)
                    x = x + 0.5 * h * (v + v_next)
                else:
                    x = self._sde_step(x, v, i * h, h, last=i == steps - 1, generator=generator)
        return x.clamp(-1, 1) if clip_denoised else x

    def _sde_step(self, x: Tensor, v: Tensor, t: float, h: float, *, last: bool,
                  generator: Optional[torch.Generator]) -> Tensor:
        """One Euler-Maruyama step of dx = [v + w s] dt + sqrt(2 w) dW with w = c (1 - t), s = (t v - x)/(1 - t)."""
        w_times_score = self.diffusion_norm * (t * v - x)  # w(t) s(x, t) with the (1 - t) cancelled
        x = x + h * (v + w_times_score)
        if last:
            return x
        w = self.diffusion_norm * (1.0 - t)
        return x + (2.0 * w * h) ** 0.5 * randn(x.shape, generator, x.device, x.dtype)
