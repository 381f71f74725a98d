"""``DiffusionModel``: an mmengine ``BaseModel`` holding a denoiser backbone and its diffusion objective."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from mmengine.model import BaseModel

from ..registry import BACKBONES, MODELS, OBJECTIVES, ComponentCfg, as_config, build, resolve_type
from .data_preprocessor import DiffusionDataPreprocessor


# what ``sampling`` (config) and the keyword overrides of :meth:`DiffusionModel.sample` may set
SAMPLING_OPTIONS = ("sampler", "steps", "cfg_scale", "guided_channels", "clip_denoised", "eta")


@MODELS.register_module(name="DiffusionModel")
class DiffusionModel(BaseModel):
    """``backbone`` is the denoiser ``(x_t, t, y) -> prediction``; ``diffusion`` is the objective.

    The backbone is any :class:`visionmix.backbones.Denoiser`; only its interface is read here.

    Modes of ``forward(inputs, labels, mode)``: ``"loss"`` (training losses, timesteps and noise drawn
    inside), ``"predict"`` (samples for ``labels``; ``inputs`` only gives the batch size), ``"tensor"``
    (one denoiser call at ``timesteps``). Label -1 means "no label" and becomes the null class.

    ``sampling`` sets the defaults of :meth:`sample`: ``sampler``, ``steps``, ``cfg_scale``,
    ``guided_channels`` (None = every noise channel; DiT guides 3 for exact reproducibility) and
    ``clip_denoised`` (True for pixel-space data). ``latent_scale`` undoes the data preprocessor's
    scaling of VAE latents before decoding; ``vae`` is a local diffusers AutoencoderKL directory used
    only to decode samples to images.
    """

    def __init__(self, backbone: ComponentCfg, diffusion: ComponentCfg | None = "iddpm",
                 sampling: dict | None = None, data_preprocessor: dict | None = None, vae: str | None = None,
                 init_cfg: dict | None = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type=DiffusionDataPreprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build(BACKBONES, backbone)
        self.diffusion = self.build_objective(diffusion) if diffusion is not None else None
        self.sampling = dict(sampler="ddpm", steps=250, cfg_scale=1.0, guided_channels=None, clip_denoised=False)
        self.sampling.update(sampling or {})
        self.latent_scale = getattr(self.data_preprocessor, "latent_scale", None)
        self.vae_path = vae
        self._vae = None

    def build_objective(self, spec: ComponentCfg) -> Any:
        """Build the objective; one that can learn sigma follows the backbone unless the config says otherwise."""
        cfg = as_config(spec)
        cls = resolve_type(OBJECTIVES, cfg.pop("type"))
        learns_sigma = self.backbone.out_channels == 2 * self.backbone.in_channels
        if "learn_sigma" in inspect.signature(cls).parameters:
            cfg.setdefault("learn_sigma", learns_sigma)
            if cfg["learn_sigma"] != learns_sigma:
                raise ValueError(f"the objective has learn_sigma={cfg['learn_sigma']} but the backbone predicts "
                                 f"{self.backbone.out_channels} channels for {self.backbone.in_channels} inputs: "
                                 "set model.backbone.learn_sigma to match")
        return cls(**cfg)

    # ------------------------------------------------------------------ labels
    @property
    def conditional(self) -> bool:
        return self.backbone.conditional

    def backbone_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Dataset labels -> backbone labels: None for unconditional models, -1 -> the null class id."""
        if not self.conditional or labels is None:
            return None
        null_id = self.backbone.null_class
        if (labels < 0).any():
            if null_id is None:
                raise ValueError("label -1 (no label) needs a null class: set class_dropout_prob > 0")
            labels = torch.where(labels < 0, torch.full_like(labels, null_id), labels)
        return labels

    # ----------------------------------------------------------------- forward
    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None, mode: str = "tensor",
                timesteps: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if mode == "loss":
            if self.diffusion is None:
                raise ValueError("mode='loss' needs a diffusion objective: set model.diffusion in the config")
            losses = self.diffusion.training_losses(self.backbone, inputs, dict(y=self.backbone_labels(labels)),
                                                    t=timesteps)
            return {name: value.mean() for name, value in losses.items()}
        if mode == "predict":
            return self.sample(labels if labels is not None else len(inputs), **kwargs)
        if mode == "tensor":
            if timesteps is None:
                raise ValueError("mode='tensor' runs the denoiser once and needs timesteps")
            return self.backbone(inputs, timesteps, self.backbone_labels(labels))
        raise ValueError(f"unknown mode {mode!r}; choose 'loss', 'predict' or 'tensor'")

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, labels: torch.Tensor | int, *, generator: torch.Generator | None = None,
               backbone: torch.nn.Module | None = None, progress: bool = False, decode: bool = True,
               size: tuple[int, int] | None = None, **overrides: Any) -> torch.Tensor:
        """Draw samples: ``labels`` (B,) class ids (-1 = unconditional) or a sample count.

        ``size`` (H, W) samples at another input size than the backbone was built for (any-resolution use).
        Returns images in [-1, 1] (decoded through the VAE for latent models when ``decode`` and a VAE
        is configured; raw latents otherwise). ``backbone`` lets callers sample with EMA weights.
        """
        if self.diffusion is None:
            raise ValueError("sampling needs a diffusion objective: set model.diffusion in the config")
        opts = {**self.sampling, **overrides}
        unknown = set(opts) - set(SAMPLING_OPTIONS)
        if unknown:
            raise TypeError(f"unknown sampling options {sorted(unknown)}")
        net = backbone if backbone is not None else self.backbone
        device = next(net.parameters()).device
        if isinstance(labels, int):
            labels = torch.full((labels,), -1, dtype=torch.long)
        labels = labels.to(device)
        y = self.backbone_labels(labels)
        h, w = size or net.input_size
        noise = torch.randn((len(labels), net.in_channels, h, w), generator=generator,
                            device=generator.device if generator is not None else device).to(device)
        common = dict(sampler=opts["sampler"], steps=opts["steps"], generator=generator, progress=progress,
                      clip_denoised=opts["clip_denoised"])
        if "eta" in opts:
            common["eta"] = opts["eta"]
        was_training = net.training
        net.eval()
        try:
            if y is not None and opts["cfg_scale"] != 1.0:
                null = torch.full_like(y, net.null_class)
                kwargs = dict(y=torch.cat([y, null]), cfg_scale=opts["cfg_scale"],
                              guided_channels=opts["guided_channels"])
                x = self.diffusion.sample(net.forward_with_cfg, torch.cat([noise, noise]), model_kwargs=kwargs,
                                          **common)[: len(y)]
            else:
                x = self.diffusion.sample(net, noise, model_kwargs=dict(y=y), **common)
        finally:
            net.train(was_training)
        return self.decode(x) if decode else x

    def decoder(self) -> torch.nn.Module | None:
        """The VAE that turns sampled latents into images (loaded on first use); None for pixel models."""
        if self.latent_scale is None:
            return None
        if self.vae_path is None:
            raise ValueError("these are VAE latents: set model.vae to a local diffusers AutoencoderKL folder "
                             "(e.g. stabilityai/sd-vae-ft-ema) to decode them to images")
        if self._vae is None:
            from ..datasets.vae import load_vae

            self._vae = load_vae(self.vae_path)
        return self._vae

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space samples -> images in [-1, 1] (pixels pass through; latents go through the VAE)."""
        vae = self.decoder()
        if vae is None:
            return x.clamp(-1, 1)
        return vae.to(x.device).decode(x / self.latent_scale).sample.clamp(-1, 1)
