"""One official model family as a conversion source: how its files wrap the weights, their key layout,
the released checkpoints and the visionmix configs they load into.

Pipeline (:meth:`Source.convert`): unwrap -> check the official key set (keys of an option visionmix has
no part for are refused with the reason) -> rename (and reshape where a layout says so) -> prefix with
``backbone.``. The result is a
state dict of the model ``visionmix.build_model(cfg.model)`` builds (a ``DiffusionModel``, whose
denoiser is ``model.backbone``), the form ``visionmix sample --checkpoint`` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .layout import Layout, LayoutError, describe

MODEL_PREFIX = "backbone."  # the denoiser's place inside visionmix's DiffusionModel
DDP_PREFIX = "module."  # what a DistributedDataParallel wrapper adds to every key


@dataclass(frozen=True)
class Release:
    """A checkpoint file the authors publish, and the visionmix config its converted weights load into."""

    model: str
    url: str
    config: str
    notes: str = ""


@dataclass(frozen=True)
class Source:
    """An official code base whose checkpoints convert to visionmix; see the module docstring."""

    name: str
    title: str
    layout: Layout
    wrappers: tuple[str, ...]  # keys of a training checkpoint holding a state dict, preferred first
    releases: tuple[Release, ...] = ()

    def unwrap(self, checkpoint: Any) -> dict[str, torch.Tensor]:
        """The official state dict inside what the file held: the dict itself when every value is a
        tensor, else the first of ``wrappers`` present (EMA weights first: the official samplers use
        them). A ``module.`` prefix on every key (a DDP-wrapped model) is removed."""
        if not isinstance(checkpoint, Mapping):
            raise LayoutError(f"a {self.title} checkpoint holds a dict (a state dict, or a training checkpoint "
                              f"with {' / '.join(self.wrappers)}), got {type(checkpoint).__name__}")
        state = checkpoint
        if not _is_state_dict(checkpoint):
            key = next((k for k in self.wrappers if isinstance(checkpoint.get(k), Mapping)), None)
            if key is None:
                top = ", ".join(map(str, list(checkpoint)[:8]))
                raise LayoutError(f"this {self.title} checkpoint is neither a state dict nor a training checkpoint "
                                  f"with a state dict under {' / '.join(map(repr, self.wrappers))}; its top-level "
                                  f"keys are: {top}")
            state = checkpoint[key]
        if not state:
            raise LayoutError(f"the {self.title} checkpoint's state dict is empty")
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise LayoutError(f"the {self.title} state dict has non-tensor entries, e.g. {bad[:3]}: "
                              "not a model state dict")
        if all(str(k).startswith(DDP_PREFIX) for k in state):
            state = {k[len(DDP_PREFIX):]: v for k, v in state.items()}
        return dict(state)

    def check(self, state_dict: Mapping[str, torch.Tensor], others: Mapping[str, Source] | None = None) -> None:
        """Raise :class:`LayoutError` unless ``state_dict`` has exactly this source's official keys.

        ``others``: sources whose layouts are tried for a hint when this one does not fit."""
        missing, unexpected = self.layout.problems(state_dict)
        unsupported = dict(self.layout.unsupported_keys(unexpected))
        unexpected = [k for k in unexpected if k not in unsupported]
        if missing or unexpected:
            fits = [name for name, other in (others or {}).items() if name != self.name and other.fits(state_dict)]
            hint = (f"its keys are those of {' / '.join(map(repr, fits))}: convert it with that source" if fits else
                    f"check that the file is a {self.title} checkpoint")
            raise LayoutError(f"not the official {self.title} key layout: {describe(missing, unexpected)}; {hint}")
        if unsupported:  # the official layout, plus a part of an option visionmix has no counterpart for
            key, reason = next(iter(unsupported.items()))
            raise LayoutError(f"{self.title} checkpoint key {key!r}: {reason}")

    def fits(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return self.layout.problems(state_dict) == ([], [])

    def convert(self, checkpoint: Any, others: Mapping[str, Source] | None = None) -> dict[str, torch.Tensor]:
        """Official checkpoint (as loaded) -> visionmix ``DiffusionModel`` state dict."""
        state = self.unwrap(checkpoint)
        self.check(state, others)
        return {MODEL_PREFIX + k: v for k, v in self.layout.rename(state).items()}


def _is_state_dict(checkpoint: Mapping) -> bool:
    return bool(checkpoint) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
