"""Checks every token mixer must pass, shared by the per-mixer test files.

- ``check_contract``: shapes on odd / non-square grids, gradients reach every parameter, bf16 autocast.
- ``assert_trains``: 30 AdamW steps of the quickstart digits denoiser (isotropic DRWKV scaffold, or the
  U-shaped one) with this mixer swapped in lower the loss on a fixed held-out batch (fixed t and noise).
"""
from __future__ import annotations

from pathlib import Path

import torch

from visionmix import build_model
from visionmix.config import load_config
from visionmix.datasets import DigitsDataset

ROOT = Path(__file__).resolve().parents[2]
GRIDS = [(4, 4), (5, 7), (16, 16)]


def as_tokens(grid: torch.Tensor) -> torch.Tensor:
    return grid.flatten(2).transpose(1, 2)


def check_contract(mixer: torch.nn.Module, dim: int, grids=((5, 7), (7, 5), (1, 1), (3, 9))) -> None:
    """Output shape equals input shape for each grid; every parameter gets a finite gradient."""
    grid_layout = mixer.layout == "grid"
    touched = set()
    for h, w in grids:
        x = torch.randn(2, dim, h, w) if grid_layout else torch.randn(2, h * w, dim)
        out = mixer(x, (h, w))
        assert out.shape == x.shape, (out.shape, x.shape)
        assert torch.isfinite(out).all()
        mixer.zero_grad()
        out.square().mean().backward()
        touched |= {n for n, p in mixer.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    missing = {n for n, p in mixer.named_parameters() if p.requires_grad} - touched
    assert not missing, f"parameters never received a gradient: {sorted(missing)}"
    x = torch.randn(2, dim, 6, 5) if grid_layout else torch.randn(2, 30, dim)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixer(x, (6, 5))
    assert out.shape == x.shape and torch.isfinite(out.float()).all()


def _quickstart(scaffold: str, mixer, ffn=None) -> torch.nn.Module:
    if scaffold == "isotropic":
        cfg = load_config(ROOT / "configs/quickstart/drwkv_digits8.py")
        cfg.model.backbone.update(hidden_size=32, depth=3, num_heads=2, drop_path_rate=0.0)
    else:
        cfg = load_config(ROOT / "configs/quickstart/dico_digits8.py")
        cfg.model.backbone.update(hidden_size=16, depths=[1, 1, 1, 1, 1])
    cfg.model.backbone.mixer = mixer
    if ffn is not None:
        cfg.model.backbone.ffn = ffn
    return build_model(cfg.model)


def assert_trains(mixer, scaffold: str = "isotropic", iters: int = 30, ffn=None) -> tuple[float, float]:
    """Held-out loss before and after ``iters`` AdamW steps on digits (``ffn``: the blocks' FFN instead of the
    scaffold's); asserts it went down."""
    torch.manual_seed(0)
    model = _quickstart(scaffold, mixer, ffn)
    data = DigitsDataset(image_size=8, split="train")
    images = torch.stack([data[i]["inputs"] for i in range(96)]).float()
    labels = torch.tensor([data[i]["labels"] for i in range(96)])
    images = images / 127.5 - 1 if images.max() > 1.5 else images
    held_x, held_y = images[:32], labels[:32]
    gen = torch.Generator().manual_seed(1)
    held_t = torch.randint(0, model.diffusion.num_timesteps, (32,), generator=gen)
    held_noise = torch.randn(held_x.shape, generator=gen)

    def held_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = model.diffusion.training_losses(model.backbone, held_x, dict(y=held_y), noise=held_noise,
                                                     t=held_t)
        model.train()
        return float(losses["loss"].mean())

    before = held_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(iters):
        idx = torch.randint(32, 96, (32,), generator=gen)
        loss = model(images[idx], labels[idx], mode="loss")
        opt.zero_grad()
        sum(loss.values()).backward()
        opt.step()
    after = held_loss()
    assert after < before, f"held-out loss did not decrease: {before:.4f} -> {after:.4f}"
    return before, after


def assert_matches_oracle(module: torch.nn.Module, x: torch.Tensor, out: torch.Tensor, expected: torch.Tensor,
                          rtol: float = 1e-9, atol: float = 1e-11, grad_rtol: float | None = None,
                          grad_atol: float | None = None) -> None:
    """``out`` (the module's) equals ``expected`` (an oracle's, computed from the same ``x`` and parameters), and
    so do the gradients of ``x`` and of every parameter under one random upstream gradient (tolerances 10x the
    output's unless given)."""
    torch.testing.assert_close(out, expected, rtol=rtol, atol=atol)
    upstream = torch.randn_like(out)
    wrt = [x, *module.parameters()]
    names = ["x", *(n for n, _ in module.named_parameters())]
    grad_rtol, grad_atol = grad_rtol or 10 * rtol, grad_atol or 10 * atol
    grads = torch.autograd.grad(out, wrt, upstream, allow_unused=True)  # unused: e.g. an option's idle table
    for name, g, e in zip(names, grads, torch.autograd.grad(expected, wrt, upstream, allow_unused=True)):
        if g is None or e is None:
            assert g is None and e is None, f"gradient of {name}: only one side uses it"
            continue
        torch.testing.assert_close(g, e, rtol=grad_rtol, atol=grad_atol, msg=lambda m: f"gradient of {name}: {m}")


def assert_init_covers_every_parameter(module: torch.nn.Module) -> None:
    """``init_weights()`` rewrites every parameter: none keeps the sentinel value written before it."""
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
    module.init_weights()
    for name, p in module.named_parameters():
        assert not (p == 7.0).any(), f"init_weights() leaves {name} as it was"


class OnGrid(torch.nn.Module):
    """``forward(x)`` = ``mixer(x, hw)``: a one-argument module for the FLOP counter."""

    def __init__(self, mixer: torch.nn.Module, hw: tuple[int, int]):
        super().__init__()
        self.mixer, self.hw = mixer, hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, self.hw)


def largest_saved_tensor(mixer: torch.nn.Module, side: int, dim: int) -> int:
    """numel of the largest tensor autograd saves in a fwd+bwd on a side×side grid (an N×N one shows here)."""
    largest = [0]
    x = torch.randn(1, side * side, dim, requires_grad=True)

    def pack(t: torch.Tensor) -> torch.Tensor:
        largest[0] = max(largest[0], t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mixer(x, (side, side)).sum().backward()
    return largest[0]
