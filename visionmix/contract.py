"""The one contract every token mixer and channel mixer (FFN) obeys; the registries check it at registration.

    @MIXERS.register_module(name="window_attention")
    class WindowAttention(TokenMixer):
        layout = "tokens"                  # or "grid": mix() takes (B, C, H, W)
        accepts_extra_tokens = False       # True: global mixers that carry in-context condition tokens
        grid_reason = "its windows tile the grid"   # why it needs exactly the H*W grid tokens
        def __init__(self, dim, num_heads=8, *, window_size=8, ..., layer_id=0, num_layers=1): ...
        def init_weights(self, scheme=None): ...    # every parameter it owns
        def mix(self, x, grid): ...                 # the same shape out

``forward(x, grid)`` (what callers use) checks ``x`` against the part's layout and the grid, then calls ``mix``.
``grid`` is a :class:`Grid` -- the (H, W) of the tokens, the number of condition tokens in front of them, the block's
layer index, and scaffold-supplied context by name -- or a plain ``(H, W)`` tuple for a part used on its own.

Initialisation happens once. A part whose paper fixes its init (Swin, RMT, FLatten, DiCo, ...) runs
``init_weights()`` at the end of its constructor, and a scaffold leaves it alone. A part that takes its init from
the scaffold (``init_from_scaffold = True``: attention, the MLP, Bi-RWKV's projections; DiT gives them xavier, U-ViT
trunc-normal) keeps PyTorch's defaults until the scaffold's init walk calls ``init_weights(scheme)``; on its own,
``init_weights()`` applies :func:`default_scheme`. :func:`check_part_class` is what registration checks.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
import torch.nn as nn

Scheme = Callable[[nn.Module], None]
LAYOUTS = ("tokens", "grid")


@dataclass(frozen=True)
class Grid:
    """What a scaffold tells a mixer about the tokens it mixes."""

    hw: tuple[int, int]
    extra_tokens: int = 0  # condition tokens in front of the H*W grid tokens (U-ViT's label and time tokens)
    layer_id: int = 0
    context: Mapping[str, Any] = field(default_factory=dict)  # scaffold-supplied data by name (e.g. a scan order)

    @property
    def tokens(self) -> int:
        """Grid tokens, H*W (not counting the extra ones)."""
        return self.hw[0] * self.hw[1]


def as_grid(grid: Grid | tuple[int, int], x: torch.Tensor) -> Grid:
    """``grid`` as a :class:`Grid`; a bare ``(H, W)`` takes its extra tokens from ``x``'s length."""
    if isinstance(grid, Grid):
        return grid
    h, w = (int(side) for side in grid)
    extra = x.shape[1] - h * w if x.ndim == 3 else 0
    return Grid((h, w), extra_tokens=extra)


def default_scheme(module: nn.Module) -> None:
    """The scheme for a part built on its own (no scaffold): xavier-uniform Linear and conv weights, zero biases,
    unit LayerNorms. Applied to one module; :func:`scaffold_walk` visits the submodules."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def scaffold_walk(module: nn.Module, scheme: Scheme, *, include_self: bool = True) -> None:
    """The one init walk: ``scheme`` on ``module`` (unless ``include_self``) and every submodule, except that a mixer
    or FFN that takes the scaffold's init gets ``init_weights(scheme)``, one whose paper fixes its init is left as
    its constructor set it, and any other part with its own ``init_weights()`` (a LePE conv, an adaLN modulation)
    initialises its whole subtree itself."""
    if include_self:
        scheme(module)
    for child in module.children():
        if isinstance(child, GridPart):
            if child.init_from_scaffold:
                child.init_weights(scheme)
        elif hasattr(child, "init_weights"):
            child.init_weights()
        else:
            scaffold_walk(child, scheme)


class GridPart(nn.Module):
    """Base of token mixers and channel mixers: ``forward(x, grid)`` checks the input, ``mix(x, grid)`` computes."""

    layout: ClassVar[str]  # every registered part declares it
    accepts_extra_tokens: ClassVar[bool] = False
    init_from_scaffold: ClassVar[bool] = False
    grid_reason: ClassVar[str] = "it reads grid positions"
    allowed_layouts: ClassVar[tuple[str, ...]] = LAYOUTS

    def init_weights(self, scheme: Scheme | None = None) -> None:
        """Initialise every parameter this part owns (``scheme``: the scaffold's, for layers left to it)."""
        raise NotImplementedError(f"{type(self).__name__} must define init_weights()")

    def mix(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define mix(x, grid)")

    def forward(self, x: torch.Tensor, grid: Grid | tuple[int, int]) -> torch.Tensor:
        grid = as_grid(grid, x)
        self.check_input(x, grid)
        return self.mix(x, grid)

    def check_input(self, x: torch.Tensor, grid: Grid) -> None:
        """``x`` has this part's layout and the grid's size; extra tokens only where the part takes them."""
        name, (h, w) = self.registered_name(), grid.hw
        if x.ndim == 4:
            if self.layout == "tokens" or tuple(x.shape[2:]) != (h, w):
                raise ValueError(f"{name} computes on {self.layout} ({self.shape_text()}); got {tuple(x.shape)} for "
                                 f"a {h}x{w} grid")
            return
        if x.ndim != 3 or self.layout == "grid":
            raise ValueError(f"{name} computes on {self.layout} ({self.shape_text()}); got {tuple(x.shape)}")
        if x.shape[1] < grid.tokens:
            raise ValueError(f"{name} needs at least H*W = {h}*{w} = {grid.tokens} tokens for a {h}x{w} grid, got "
                             f"{x.shape[1]}")
        if x.shape[1] != grid.tokens + grid.extra_tokens or grid.extra_tokens < 0:
            raise ValueError(f"{name}: {x.shape[1]} tokens for a {h}x{w} grid with {grid.extra_tokens} extra tokens "
                             f"(expected {grid.tokens + grid.extra_tokens})")
        if grid.extra_tokens and not self.accepts_extra_tokens:
            raise ValueError(f"{name} needs exactly H*W = {h}*{w} = {grid.tokens} grid tokens ({self.grid_reason}), "
                             f"got {x.shape[1]}: extra condition tokens are not supported, use "
                             "conditioning='adaln_zero' or 'adaln' with it")

    def shape_text(self) -> str:
        return {"tokens": "(B, H*W, C)", "grid": "(B, C, H, W)"}.get(self.layout, "(B, H*W, C) or (B, C, H, W)")

    @classmethod
    def registered_name(cls) -> str:
        return getattr(cls, "_registered_name", cls.__name__)


class TokenMixer(GridPart):
    """How tokens exchange information (attention, Bi-WKV, convolution, ...). Knows nothing about time, class or
    diffusion; works on any H x W, odd and non-square included."""


class ChannelMixer(GridPart):
    """The per-token (or locally mixing) feed-forward part of a block; pointwise ones declare ``layout = "any"``."""

    accepts_extra_tokens: ClassVar[bool] = True
    allowed_layouts: ClassVar[tuple[str, ...]] = LAYOUTS + ("any",)


def check_part_class(cls: Any, base: type[GridPart]) -> None:
    """Raise ``TypeError`` naming what ``cls`` lacks to be a ``base`` (a registered mixer or FFN)."""
    what = f"{getattr(cls, '__name__', cls)!r}"
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise TypeError(f"{what} is not a {base.__name__} (visionmix.contract): subclass it")
    declared = next((vars(k)["layout"] for k in cls.__mro__ if "layout" in vars(k)), None)
    if declared not in cls.allowed_layouts:
        raise TypeError(f"{what} declares no layout: set layout = one of {', '.join(cls.allowed_layouts)} "
                        f"(got {declared!r})")
    for method in ("init_weights", "mix"):
        if getattr(cls, method) is getattr(GridPart, method):
            raise TypeError(f"{what} does not define {method}(): every {base.__name__} initialises its own "
                            "parameters and computes in mix(x, grid)")
    if not isinstance(cls.accepts_extra_tokens, bool):
        raise TypeError(f"{what}: accepts_extra_tokens must be True or False")
