"""Sample grids people can actually see: one row per class, nearest-neighbour upscaled, written atomically.

An 8×8-digit grid straight from ``torchvision.utils.save_image`` is a 90-pixel PNG; every grid visionmix writes
(``visionmix sample``, the sample-grid hook, the demo, the model-zoo table) goes through :func:`save_grid`,
which scales it by a whole factor (pixels stay sharp squares) until its shorter side is at least
``min_side`` pixels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .atomic_write import atomic_path
import torch.nn.functional as F
from torchvision.utils import make_grid

MIN_SIDE = 256


def rows_by_class(images: torch.Tensor, labels: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, int]:
    """Reorder ``images`` so each class fills one row (classes ascending, blank cells where a class has fewer
    images than the widest row); returns ``(images, images_per_row)``."""
    labels = torch.as_tensor(labels).reshape(-1).cpu()
    if len(labels) != len(images):
        raise ValueError(f"one label per image needed: {len(images)} images, {len(labels)} labels")
    groups = [images[labels == c] for c in labels.unique(sorted=True)]
    width = max(len(g) for g in groups)
    blank = torch.ones_like(images[:1])  # white, in the [-1, 1] range of the images
    cells = [torch.cat([g, blank.expand(width - len(g), *images.shape[1:])]) for g in groups]
    return torch.cat(cells), width


def grid_image(images: torch.Tensor, nrow: int | None = None, labels: Sequence[int] | torch.Tensor | None = None,
               min_side: int = MIN_SIDE) -> torch.Tensor:
    """[-1, 1] ``(N, C, H, W)`` -> uint8 ``(3 or 1, H', W')`` grid with a 1-pixel white frame, upscaled by a whole
    factor to a shorter side >= ``min_side``. ``labels``: one row per class; else ``nrow`` images per row
    (default: a square)."""
    images = images.detach().float().cpu()
    if images.ndim != 4 or not len(images):
        raise ValueError(f"expected a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if labels is not None:
        images, nrow = rows_by_class(images, labels)
    nrow = nrow or max(1, math.isqrt(len(images) - 1) + 1)
    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=1, pad_value=1.0)
    if images.shape[1] == 1:  # make_grid repeats one channel to three; keep grey PNGs small
        grid = grid[:1]
    factor = max(1, math.ceil(min_side / min(grid.shape[-2:])))
    if factor > 1:
        grid = F.interpolate(grid[None], scale_factor=factor, mode="nearest")[0]
    return (grid * 255).round().to(torch.uint8)


def save_grid(images: torch.Tensor, path: str, nrow: int | None = None,
              labels: Sequence[int] | torch.Tensor | None = None, min_side: int = MIN_SIDE) -> str:
    """Write :func:`grid_image` as a PNG at ``path``: whole under a temporary name, then renamed, so a reader
    never sees half a file. Returns ``path``."""
    from PIL import Image

    grid = grid_image(images, nrow, labels, min_side)
    pixels = grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy()
    with atomic_path(path) as temp:
        Image.fromarray(pixels).save(temp, format="PNG")
    return path
