"""Loading the latent-space VAE from a local folder, with the error message for when it is not there.

Latent models (DiT, SiT, U-ViT on ImageNet) use Stable Diffusion's KL-f8 autoencoder,
``stabilityai/sd-vae-ft-ema`` (or ``sd-vae-ft-mse``): 3x256x256 images <-> 4x32x32 latents, multiplied by
``scaling_factor = 0.18215`` before diffusion. visionmix never downloads it: pass the folder that
``diffusers`` ``save_pretrained`` / ``huggingface-cli download`` produced (``config.json`` +
``diffusion_pytorch_model.safetensors``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .paths import resolve_root

SD_VAE_SCALE = 0.18215
HOW_TO_GET = ("a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors), e.g. "
              "stabilityai/sd-vae-ft-ema: on a machine with internet run `huggingface-cli download "
              "stabilityai/sd-vae-ft-ema --local-dir <dir>` and copy <dir> here (this machine cannot download it)")


def load_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """``diffusers.AutoencoderKL`` from a local folder, in eval mode on ``device``; clear errors otherwise."""
    folder = resolve_root(path)
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"no VAE at {str(folder)!r}: expected {HOW_TO_GET}")
    class_name = json.loads(config.read_text()).get("_class_name")
    if class_name not in (None, "AutoencoderKL"):
        raise ValueError(f"{str(config)!r} describes a {class_name}, not an AutoencoderKL; expected {HOW_TO_GET}")
    try:
        from diffusers import AutoencoderKL
    except ImportError as exc:
        raise ImportError("loading the VAE needs diffusers: pip install 'visionmix[latent]'") from exc
    try:
        # low_cpu_mem_usage=False: the default path wants `accelerate` and warns without it
        vae = AutoencoderKL.from_pretrained(Path(folder), local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"could not load an AutoencoderKL from {str(folder)!r} ({exc}); "
                         f"expected {HOW_TO_GET}") from exc
    return vae.to(device).eval().requires_grad_(False)
