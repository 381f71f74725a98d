"""Shared pieces of the converter tests: official-layout state dicts built from shape tables written from
the official code, tiny visionmix models of the target configs, and plain-torch pieces of the official
forwards (DiT's whole forward, which SiT shares), keyed by official parameter names."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from visionmix import build_model
from visionmix.config import load_config
from visionmix.converters import convert
from visionmix.flops import meta_model

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64


def official_state(shapes: Mapping[str, tuple[int, ...]], std: float = 0.2, seed: int = 0,
                   meta: bool = False) -> dict[str, torch.Tensor]:
    """Random float64 tensors (or shape-only meta tensors) under the official names."""
    if meta:
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, dtype=F64, generator=gen) * std for k, s in shapes.items()}


def backbone_options(**backbone) -> dict:
    return {f"model.backbone.{k}": v for k, v in backbone.items()}


def converted_model(source: str, checkpoint, config: str, options: dict | None = None, **backbone) -> torch.nn.Module:
    """``config`` (shrunk by ``backbone`` overrides, plus any other ``options``) in float64 eval mode, holding the
    converted checkpoint loaded with strict=True."""
    cfg = load_config(ROOT / config, {**backbone_options(**backbone), **(options or {})})
    model = build_model(cfg.model).double().eval()
    model.load_state_dict(convert(source, checkpoint), strict=True)
    return model


def assert_loads_at_full_size(source: str, shapes: Mapping[str, tuple[int, ...]], config: str, **backbone) -> None:
    """The official layout at its real size (meta tensors: no memory) converts and loads with strict=True into
    ``config``'s model built on the meta device: every key present and every shape equal."""
    model = meta_model(load_config(ROOT / config, backbone_options(**backbone) or None).model)
    state = convert(source, official_state(shapes, meta=True))
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == wanted
    model.load_state_dict(state, strict=True, assign=True)


# ------------------------------------------------------------------ functional pieces of the official code
def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """GLIDE / DiT sinusoid [cos(t f), sin(t f)], f_i = 10000^(-i/half), computed in float32 as the official
    code does, returned in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(F64)


def time_mlp(sd: Mapping, prefix: str, t: torch.Tensor) -> torch.Tensor:
    """``prefix``mlp = Linear(256, D) - SiLU - Linear(D, D) on 256 frequencies (DiT's TimestepEmbedder)."""
    h = F.silu(F.linear(timestep_features(t, 256), sd[prefix + "0.weight"], sd[prefix + "0.bias"]))
    return F.linear(h, sd[prefix + "2.weight"], sd[prefix + "2.bias"])


def linear(sd: Mapping, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, sd[prefix + "weight"], sd.get(prefix + "bias"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def plain_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def attention(sd: Mapping, prefix: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """timm / U-ViT attention: fused qkv split as (3, heads, head_dim), softmax(q k^T / sqrt(d)) v, proj."""
    b, n, d = x.shape
    q, k, v = linear(sd, prefix + "qkv.", x).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    weights = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(dim=-1)
    return linear(sd, prefix + "proj.", (weights @ v).transpose(1, 2).reshape(b, n, d))


def unpatchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, h*w, p*p*C) -> (N, C, h*p, w*p) with DiT's (p, q, c) channel order, square grids."""
    n, tokens, width = x.shape
    side, channels = math.isqrt(tokens), width // (patch * patch)
    x = x.reshape(n, side, side, patch, patch, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, channels, side * patch, side * patch)


# ------------------------------------------------------------------ DiT (and SiT): layout and forward
def long_skip_shapes(block: Mapping[str, tuple[int, ...]], depth: int, width: int) -> dict[str, tuple[int, ...]]:
    """U-ViT's long-skip layout (shared by Diffusion-RWKV): ``block`` under in_blocks.{i} / mid_block / out_blocks.{i},
    depth // 2 in and out, plus each out-block's Linear(2D, D) skip."""
    prefixes = [f"in_blocks.{i}." for i in range(depth // 2)] + ["mid_block."]
    prefixes += [f"out_blocks.{i}." for i in range(depth // 2)]
    shapes = {p + k: s for p in prefixes for k, s in block.items()}
    for i in range(depth // 2):
        shapes.update({f"out_blocks.{i}.skip_linear.weight": (width, 2 * width),
                       f"out_blocks.{i}.skip_linear.bias": (width,)})
    return shapes


def dit_shapes(depth: int, hidden: int, patch: int, in_channels: int, grid: int, num_classes: int,
               learn_sigma: bool = True, mlp_ratio: float = 4.0) -> dict[str, tuple[int, ...]]:
    """DiT's state-dict keys and shapes (models.py: PatchEmbed, TimestepEmbedder, LabelEmbedder, DiTBlock with
    timm Attention / Mlp, FinalLayer; the frozen pos_embed parameter is stored)."""
    d, hid, out = hidden, int(hidden * mlp_ratio), patch * patch * in_channels * (2 if learn_sigma else 1)
    shapes = {
        "x_embedder.proj.weight": (d, in_channels, patch, patch), "x_embedder.proj.bias": (d,),
        "t_embedder.mlp.0.weight": (d, 256), "t_embedder.mlp.0.bias": (d,),
        "t_embedder.mlp.2.weight": (d, d), "t_embedder.mlp.2.bias": (d,),
        "y_embedder.embedding_table.weight": (num_classes + 1, d),
        "pos_embed": (1, grid * grid, d),
        "final_layer.linear.weight": (out, d), "final_layer.linear.bias": (out,),
        "final_layer.adaLN_modulation.1.weight": (2 * d, d), "final_layer.adaLN_modulation.1.bias": (2 * d,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
            b + "mlp.fc1.weight": (hid, d), b + "mlp.fc1.bias": (hid,),
            b + "mlp.fc2.weight": (d, hid), b + "mlp.fc2.bias": (d,),
            b + "adaLN_modulation.1.weight": (6 * d, d), b + "adaLN_modulation.1.bias": (6 * d,),
        })
    return shapes


def dit_forward(sd: Mapping, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """DiT.forward written out on the official state dict: patches + pos_embed, c = t_emb + y_emb, adaLN-Zero
    blocks (LayerNorm without affine, eps 1e-6; GELU-tanh MLP), adaLN final layer, unpatchify."""
    tokens = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=patch)
    tokens = tokens.flatten(2).transpose(1, 2) + sd["pos_embed"]
    c = time_mlp(sd, "t_embedder.mlp.", t) + sd["y_embedder.embedding_table.weight"][y]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(depth):
        b = f"blocks.{i}."
        s1, c1, g1, s2, c2, g2 = linear(sd, b + "adaLN_modulation.1.", F.silu(c)).chunk(6, dim=1)
        tokens = tokens + g1.unsqueeze(1) * attention(sd, b + "attn.", modulate(plain_norm(tokens), s1, c1), heads)
        h = F.gelu(linear(sd, b + "mlp.fc1.", modulate(plain_norm(tokens), s2, c2)), approximate="tanh")
        tokens = tokens + g2.unsqueeze(1) * linear(sd, b + "mlp.fc2.", h)
    shift, scale = linear(sd, "final_layer.adaLN_modulation.1.", F.silu(c)).chunk(2, dim=1)
    return unpatchify(linear(sd, "final_layer.linear.", modulate(plain_norm(tokens), shift, scale)), patch)
