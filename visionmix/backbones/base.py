"""``Denoiser``: the interface every scaffold implements and the only one the rest of visionmix reads.

    forward(x (B, C, H, W), t (B,), y (B,) | None) -> (B, C_out, H, W),   C_out = 2C when learn_sigma

It owns what scaffolds share: the timestep and label embedders (one condition width, or one per U-level),
the null label of classifier-free guidance, input checks, ``forward_with_cfg`` and the init walk in which
every part that defines ``init_weights()`` initialises itself and only the rest gets the scaffold's scheme.
``DiffusionModel``, the hooks and the tools use ``input_size``, ``in_channels``, ``out_channels``,
``num_classes``, ``conditional``, ``null_class`` and ``forward_with_cfg``; nothing else.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from ..contract import scaffold_walk
from ..layers import LabelEmbedder, TimestepEmbedder


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class Denoiser(nn.Module):
    """Base class of the scaffolds; subclasses call :meth:`setup_interface` and :meth:`build_embedders`."""

    input_size: tuple[int, int]
    in_channels: int
    out_channels: int
    num_classes: int
    size_divisor: int  # input sides must be multiples of this (patch size, times 2 per U-level)
    timestep_offset: int = 0  # added to t before embedding (a released model that numbers steps from 1)

    def setup_interface(self, input_size: int | Sequence[int], in_channels: int, learn_sigma: bool,
                        num_classes: int, size_divisor: int) -> None:
        self.input_size, self.in_channels, self.num_classes = pair(input_size), in_channels, num_classes
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.size_divisor = size_divisor
        for side in self.input_size:
            if side % size_divisor:
                raise ValueError(f"input_size {self.input_size} is not divisible by {self.divisor_reason()}: "
                                 f"choose a multiple of {size_divisor}")

    def divisor_reason(self) -> str:
        """What ``size_divisor`` stands for, in words, for error messages."""
        return str(self.size_divisor)

    def build_embedders(self, dims: int | Sequence[int], class_dropout_prob: float, time_embed_mlp: bool = True
                        ) -> None:
        """``t_embedder`` (one width) or ``t_embedder_1..n`` (one per width), and the label table(s)."""
        if isinstance(dims, int):
            self.t_embedder = TimestepEmbedder(dims, mlp=time_embed_mlp)
        else:
            for i, dim in enumerate(dims, start=1):
                self.add_module(f"t_embedder_{i}", TimestepEmbedder(dim, mlp=time_embed_mlp))
        self.num_time_embedders = 1 if isinstance(dims, int) else len(dims)
        self.y_embedder = LabelEmbedder(self.num_classes, dims, class_dropout_prob) if self.num_classes > 0 else None

    # ------------------------------------------------------------ interface
    @property
    def conditional(self) -> bool:
        return self.y_embedder is not None

    @property
    def null_class(self) -> int | None:
        """The label id meaning "no label" (classifier-free guidance), or None when there is none."""
        return self.y_embedder.null_id if self.y_embedder is not None else None

    def time_embedders(self) -> list[TimestepEmbedder]:
        if self.num_time_embedders == 1 and hasattr(self, "t_embedder"):
            return [self.t_embedder]
        return [getattr(self, f"t_embedder_{i}") for i in range(1, self.num_time_embedders + 1)]

    def check_inputs(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (input {tuple(x.shape)})")
        if x.shape[2] % self.size_divisor or x.shape[3] % self.size_divisor:
            raise ValueError(f"image size {tuple(x.shape[2:])} is not divisible by {self.divisor_reason()}: "
                             "resize/crop the input or choose another patch size")
        if y is not None and self.y_embedder is None:
            raise ValueError("this model is unconditional (num_classes=0): call it with y=None")

    def embed_conditions(self, t: torch.Tensor, y: torch.Tensor | None, x: torch.Tensor, dtype: torch.dtype
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Time embeddings (one per embedder) and label embeddings (one per table, None if unconditional).

        ``y=None`` on a class-conditional model means the null label for the whole batch.
        """
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        t = t + self.timestep_offset if self.timestep_offset else t
        times = [embedder(t).to(dtype) for embedder in self.time_embedders()]
        if self.y_embedder is None:
            return times, None
        if y is None:
            if self.null_class is None:
                raise ValueError("this class-conditional model has no null label (class_dropout_prob=0): pass y")
            y = torch.full((x.shape[0],), self.null_class, dtype=torch.long, device=x.device)
        labels = self.y_embedder(y)
        labels = list(labels) if isinstance(labels, tuple) else [labels]
        return times, [e.to(dtype) for e in labels]

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float,
                         guided_channels: int | None = 3) -> torch.Tensor:
        """Classifier-free guidance on a doubled batch whose second half carries null labels.

        Only the first half of ``x`` is used (DiT's convention); ``guided_channels`` output channels get
        ``uncond + s * (cond - uncond)`` (DiT guides 3 for exact reproducibility; None = every noise
        channel, i.e. ``in_channels``); the remaining channels (learned variance) pass through.
        """
        if self.null_class is None:
            raise ValueError("classifier-free guidance needs a class-conditional model with a null label")
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half]), t, y)
        n = self.in_channels if guided_channels is None else guided_channels
        eps, rest = out[:, :n], out[:, n:]
        cond, uncond = eps.chunk(2)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided]), rest], dim=1)

    # ----------------------------------------------------------------- init
    def init_parts(self, scheme: Callable[[nn.Module], None]) -> None:
        """The scaffold's init walk over its parts (:func:`visionmix.contract.scaffold_walk`): ``scheme`` goes to the
        scaffold's own modules and to the mixers and FFNs that take their init from it (attention, the MLP, Bi-RWKV);
        every other part keeps the init it owns."""
        scaffold_walk(self, scheme, include_self=False)

    def init_embedders_dit(self) -> None:
        """DiT's embedder init: N(0, 0.02) for the time MLPs' weights and the label tables."""
        for embedder in self.time_embedders():
            if embedder.mlp is not None:
                nn.init.normal_(embedder.mlp[0].weight, std=0.02)
                nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        if self.y_embedder is not None:
            for table in self.y_embedder.tables():
                nn.init.normal_(table.weight, std=0.02)
