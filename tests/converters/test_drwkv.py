"""Diffusion-RWKV -> visionmix: the converted model computes the official forward (Q-shift, Bi-WKV by its
formula, RWKV channel mix, long skips, adaLN-Zero) written out on the official weights; the training pickle
with its argparse Namespace is read (tests/converters/test_loading.py: what else is refused)."""
import argparse

import pytest
import torch
import torch.nn.functional as F

from tests.converters.helpers import (F64, assert_loads_at_full_size, converted_model, linear, long_skip_shapes,
                                      modulate, official_state, plain_norm, time_mlp, unpatchify)
from visionmix.converters import convert, load_official

CONFIGS = {  # config: official (hidden, depth, channels, grid, classes) at its full size
    "configs/drwkv/drwkv_l2_celeba64.py": (768, 37, 3, 32, 0),  # the size of the one uploaded file
    "configs/drwkv/drwkv_b2_cifar32.py": (384, 25, 3, 16, 0),
    "configs/drwkv/drwkv_h2_in256.py": (1024, 37, 4, 16, 1000),
    "configs/drwkv/drwkv_h2_in512.py": (1024, 37, 4, 32, 1000),
}


@pytest.fixture(autouse=True)
def _dense_wkv(monkeypatch):
    monkeypatch.setenv("VISIONMIX_WKV_BACKEND", "dense")  # float64 end to end, no native build in a unit test


def drwkv_shapes(hidden, depth, channels, grid, num_classes, patch=2, hidden_rate=4):
    """models_drwkv.py's keys: PatchEmbed, TimestepEmbedder (time_embed), LabelEmbedder (label_emb, only when
    num_classes > 0), trainable pos_embed, Blocks (ln0 in layer 0, ln1/ln2, att = VRWKV_SpatialMix, ffn =
    VRWKV_ChannelMix, adaLN_modulation, skip_linear in out blocks), norm_f, FinalLayer."""
    d, hid, out = hidden, hidden_rate * hidden, patch * patch * 2 * channels
    shapes = {"patch_embed.proj.weight": (d, channels, patch, patch), "patch_embed.proj.bias": (d,),
              "time_embed.mlp.0.weight": (d, 256), "time_embed.mlp.0.bias": (d,),
              "time_embed.mlp.2.weight": (d, d), "time_embed.mlp.2.bias": (d,), "pos_embed": (1, grid * grid, d),
              "in_blocks.0.ln0.weight": (d,), "in_blocks.0.ln0.bias": (d,), "norm_f.weight": (d,), "norm_f.bias": (d,),
              "final_layer.linear.weight": (out, d), "final_layer.linear.bias": (out,),
              "final_layer.adaLN_modulation.1.weight": (2 * d, d), "final_layer.adaLN_modulation.1.bias": (2 * d,)}
    if num_classes > 0:
        shapes["label_emb.embedding_table.weight"] = (num_classes + 1, d)
    block = {"ln1.weight": (d,), "ln1.bias": (d,), "ln2.weight": (d,), "ln2.bias": (d,),
             "att.spatial_decay": (d,), "att.spatial_first": (d,), "att.spatial_mix_k": (1, 1, d),
             "att.spatial_mix_v": (1, 1, d), "att.spatial_mix_r": (1, 1, d), "att.key.weight": (d, d),
             "att.value.weight": (d, d), "att.receptance.weight": (d, d), "att.output.weight": (d, d),
             "ffn.spatial_mix_k": (1, 1, d), "ffn.spatial_mix_r": (1, 1, d), "ffn.key.weight": (hid, d),
             "ffn.receptance.weight": (d, d), "ffn.value.weight": (d, hid),
             "adaLN_modulation.1.weight": (6 * d, d), "adaLN_modulation.1.bias": (6 * d,)}
    shapes.update(long_skip_shapes(block, depth, d))
    return shapes


def tiny_official(channels, classes, seed=0):
    sd = official_state(drwkv_shapes(16, 3, channels, 4, classes), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for key in [k for k in sd if k.endswith(("spatial_decay", "spatial_first"))]:
        # Both codes cast decay / first to float32 before dividing by T; multiples of 1/64 with T = 16 tokens
        # survive that cast exactly, so the float64 comparison below can be tight.
        sd[key] = torch.randint(-256, 257, sd[key].shape, generator=gen).to(F64) / 64
    return sd


def q_shift(x, hw, shift=1, gamma=0.25):
    """Quarter g of the channels from the left / right / upper / lower neighbour (zeros off the grid)."""
    b, n, c = x.shape
    (h, w), g = hw, int(c * gamma)
    img = x.transpose(1, 2).reshape(b, c, h, w)
    out = torch.zeros_like(img)
    out[:, 0:g, :, shift:] = img[:, 0:g, :, :w - shift]
    out[:, g:2 * g, :, :w - shift] = img[:, g:2 * g, :, shift:]
    out[:, 2 * g:3 * g, shift:, :] = img[:, 2 * g:3 * g, :h - shift, :]
    out[:, 3 * g:4 * g, :h - shift, :] = img[:, 3 * g:4 * g, shift:, :]
    out[:, 4 * g:] = img[:, 4 * g:]
    return out.flatten(2).transpose(1, 2)


def bi_wkv(w, u, k, v):
    """y_t = sum_i e^{l_ti} v_i / sum_i e^{l_ti}, l_ti = -(|t-i|-1) w + k_i (i != t), u + k_t (i == t)."""
    n = k.shape[1]
    pos = torch.arange(n, dtype=F64)
    logits = -((pos[:, None] - pos[None, :]).abs() - 1)[None, :, :, None] * w + k[:, None, :, :]
    logits[:, torch.arange(n), torch.arange(n)] = u + k
    return (logits.softmax(dim=2) * v[:, None]).sum(dim=2)


def drwkv_forward(sd, x, t, y, patch=2):
    """DiffRWKVModel.forward on the official state dict."""
    def norm(prefix, z):
        return F.layer_norm(z, z.shape[-1:], sd[prefix + "weight"], sd[prefix + "bias"], eps=1e-5)

    def lerp(z, shifted, mix):
        return z * mix + shifted * (1 - mix)

    def spatial_mix(p, z, hw):
        shifted, n = q_shift(z, hw), z.shape[1]
        k = linear(sd, p + "key.", lerp(z, shifted, sd[p + "spatial_mix_k"]))
        v = linear(sd, p + "value.", lerp(z, shifted, sd[p + "spatial_mix_v"]))
        r = linear(sd, p + "receptance.", lerp(z, shifted, sd[p + "spatial_mix_r"]))
        return linear(sd, p + "output.", torch.sigmoid(r) * bi_wkv(sd[p + "spatial_decay"] / n,
                                                                  sd[p + "spatial_first"] / n, k, v))

    def channel_mix(p, z, hw):
        shifted = q_shift(z, hw)
        k = torch.relu(linear(sd, p + "key.", lerp(z, shifted, sd[p + "spatial_mix_k"]))).square()
        return torch.sigmoid(linear(sd, p + "receptance.", lerp(z, shifted, sd[p + "spatial_mix_r"]))) \
            * linear(sd, p + "value.", k)

    def block(p, z, hw, skip=None):
        if skip is not None:
            z = linear(sd, p + "skip_linear.", torch.cat([z, skip], dim=-1))
        s1, c1, g1, s2, c2, g2 = linear(sd, p + "adaLN_modulation.1.", F.silu(c)).chunk(6, dim=1)
        if p + "ln0.weight" in sd:
            z = norm(p + "ln0.", z)
        z = z + g1.unsqueeze(1) * spatial_mix(p + "att.", modulate(norm(p + "ln1.", z), s1, c1), hw)
        return z + g2.unsqueeze(1) * channel_mix(p + "ffn.", modulate(norm(p + "ln2.", z), s2, c2), hw)

    tokens = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    hw = tuple(tokens.shape[2:])
    tokens = tokens.flatten(2).transpose(1, 2) + sd["pos_embed"]
    c = time_mlp(sd, "time_embed.mlp.", t)
    if y is not None:
        c = c + sd["label_emb.embedding_table.weight"][y]
    half = len({k.split(".")[1] for k in sd if k.startswith("in_blocks.")})
    skips = []
    for i in range(half):
        tokens = block(f"in_blocks.{i}.", tokens, hw)
        skips.append(tokens)
    tokens = block("mid_block.", tokens, hw)
    for i in range(half):
        tokens = block(f"out_blocks.{i}.", tokens, hw, skips.pop())
    shift, scale = linear(sd, "final_layer.adaLN_modulation.1.", F.silu(c)).chunk(2, dim=1)
    tokens = modulate(plain_norm(norm("norm_f.", tokens)), shift, scale)
    return unpatchify(linear(sd, "final_layer.linear.", tokens), patch)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_converted_model_matches_the_official_forward(config):
    channels, classes = CONFIGS[config][2], min(CONFIGS[config][4], 5)
    official = tiny_official(channels, classes)
    model = converted_model("drwkv", {"ema": official}, config, input_size=8, hidden_size=16, depth=3, num_heads=2,
                            num_classes=classes)
    x, t = torch.randn(2, channels, 8, 8, dtype=F64), torch.tensor([7, 640])
    y = torch.tensor([4, 5]) if classes else None  # 5: the null label
    expected = drwkv_forward(official, x, t, y)
    assert expected.shape == (2, 2 * channels, 8, 8)
    torch.testing.assert_close(model.backbone(x, t, y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_full_size_loads_strictly(config):
    assert_loads_at_full_size("drwkv", drwkv_shapes(*CONFIGS[config]), config)


def test_m2_at_32px_loads_into_the_32px_config_widened():
    """The upload's current name reads as DRWKV-M/2 at 32x32: that model too converts (its size says L/2 at 64)."""
    assert_loads_at_full_size("drwkv", drwkv_shapes(512, 25, 3, 16, 0), "configs/drwkv/drwkv_b2_cifar32.py",
                              hidden_size=512, num_heads=8)


def test_training_pickle_with_its_namespace_is_read_and_converted(tmp_path):
    ema, raw = tiny_official(3, 0, seed=1), tiny_official(3, 0, seed=2)
    args = argparse.Namespace(model="DRWKV-B/2", image_size=32, task_type="uncond", num_classes=-1, lr=1e-4,
                              latent_space=False, resume=None)
    path = tmp_path / "0100000.pt"
    torch.save({"model": raw, "ema": ema, "opt": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "args": args}, path)
    loaded = load_official(path)
    assert loaded["args"] == args
    state = convert("drwkv", loaded)
    assert torch.equal(state["backbone.mid_block.mixer.spatial_decay"], ema["mid_block.att.spatial_decay"])
    assert "backbone.y_embedder.embedding_table.weight" not in state
