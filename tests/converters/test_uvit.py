"""U-ViT -> visionmix: the converted model computes U-ViT's forward written out on the official weights."""
import pytest
import torch
import torch.nn.functional as F

from tests.converters.helpers import (F64, assert_loads_at_full_size, attention, converted_model, linear,
                                      long_skip_shapes, official_state, timestep_features, unpatchify)
from visionmix.converters import LayoutError, convert, unwrap

CONFIG = "configs/uvit/uvit_h2_in256.py"


def uvit_shapes(depth, hidden, patch, in_channels, grid, num_classes, qkv_bias=False, mlp_ratio=4):
    """libs/uvit.py's keys (conv=False, mlp_time_embed=False): PatchEmbed, label_emb (num_classes rows, the
    null class included), pos_embed over [label, time, patches], pre-norm blocks, skip_linear in the out
    blocks, norm, decoder_pred."""
    d, hid = hidden, mlp_ratio * hidden
    extras = 2 if num_classes > 0 else 1
    shapes = {"patch_embed.proj.weight": (d, in_channels, patch, patch), "patch_embed.proj.bias": (d,),
              "pos_embed": (1, extras + grid * grid, d), "norm.weight": (d,), "norm.bias": (d,),
              "decoder_pred.weight": (patch * patch * in_channels, d),
              "decoder_pred.bias": (patch * patch * in_channels,)}
    if num_classes > 0:
        shapes["label_emb.weight"] = (num_classes, d)
    block = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d), "attn.proj.weight": (d, d),
             "attn.proj.bias": (d,), "norm2.weight": (d,), "norm2.bias": (d,), "mlp.fc1.weight": (hid, d),
             "mlp.fc1.bias": (hid,), "mlp.fc2.weight": (d, hid), "mlp.fc2.bias": (d,)}
    if qkv_bias:
        block["attn.qkv.bias"] = (3 * d,)
    shapes.update(long_skip_shapes(block, depth, d))
    return shapes


def uvit_forward(sd, x, t, y, heads, patch):
    """UViT.forward: tokens [label, time, patches] + pos_embed, long skips, norm, decoder_pred, unpatchify."""
    def norm(prefix, z):
        return F.layer_norm(z, z.shape[-1:], sd[prefix + "weight"], sd[prefix + "bias"], eps=1e-5)

    def block(p, z, skip=None):
        if skip is not None:
            z = linear(sd, p + "skip_linear.", torch.cat([z, skip], dim=-1))
        z = z + attention(sd, p + "attn.", norm(p + "norm1.", z), heads)
        return z + linear(sd, p + "mlp.fc2.", F.gelu(linear(sd, p + "mlp.fc1.", norm(p + "norm2.", z))))

    tokens = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    tokens = tokens.flatten(2).transpose(1, 2)
    extras = [timestep_features(t, tokens.shape[-1])[:, None]]
    if y is not None:
        extras.insert(0, sd["label_emb.weight"][y][:, None])
    tokens = torch.cat([*extras, tokens], dim=1) + sd["pos_embed"]
    half = len({k.split(".")[1] for k in sd if k.startswith("in_blocks.")})
    skips = []
    for i in range(half):
        tokens = block(f"in_blocks.{i}.", tokens)
        skips.append(tokens)
    tokens = block("mid_block.", tokens)
    for i in range(half):
        tokens = block(f"out_blocks.{i}.", tokens, skips.pop())
    out = linear(sd, "decoder_pred.", norm("norm.", tokens))[:, len(extras):]
    return unpatchify(out, patch)


TINY = dict(input_size=8, hidden_size=32, depth=4, num_heads=4)


@pytest.mark.parametrize("classes", [10, 0], ids=["class-conditional", "unconditional"])
def test_converted_model_matches_the_official_forward(classes):
    official = official_state(uvit_shapes(4, 32, 2, 4, 4, classes + 1 if classes else 0))
    model = converted_model("uvit", official, CONFIG, num_classes=classes, **TINY)
    x, t = torch.randn(3, 4, 8, 8, dtype=F64), torch.tensor([0, 499, 999])
    y = torch.tensor([0, 9, 10]) if classes else None  # 10: the null label
    # U-ViT numbers its steps 1..1000: visionmix's step t is its t + 1 (the config's timestep_offset)
    expected = uvit_forward(official, x, t + 1, y, heads=4, patch=2)
    assert expected.shape == (3, 4, 8, 8)
    torch.testing.assert_close(model.backbone(x, t, y), expected, rtol=1e-10, atol=1e-10)


def test_qkv_bias_variant_converts():
    official = official_state(uvit_shapes(4, 32, 2, 4, 4, 11, qkv_bias=True))
    model = converted_model("uvit", official, CONFIG, {"model.backbone.mixer.qkv_bias": True}, num_classes=10, **TINY)
    x, t, y = torch.randn(2, 4, 8, 8, dtype=F64), torch.tensor([3, 30]), torch.tensor([2, 5])
    torch.testing.assert_close(model.backbone(x, t, y), uvit_forward(official, x, t + 1, y, heads=4, patch=2),
                               rtol=1e-10, atol=1e-10)


def test_released_size_loads_strictly():
    assert_loads_at_full_size("uvit", uvit_shapes(28, 1152, 2, 4, 16, 1001), CONFIG)


def test_nnet_ema_is_preferred():
    ema, raw = (official_state(uvit_shapes(4, 32, 2, 4, 4, 11), seed=s) for s in (1, 2))
    assert all(unwrap("uvit", {"nnet": raw, "nnet_ema": ema})[k] is ema[k] for k in ema)
    assert all(unwrap("uvit", {"nnet": raw})[k] is raw[k] for k in raw)


@pytest.mark.parametrize("key, shape, match", [
    ("time_embed.0.weight", (128, 32), "mlp_time_embed=True"),
    ("final_layer.weight", (4, 4, 3, 3), "conv=True"),
])
def test_options_visionmix_cannot_hold_are_refused_with_the_reason(key, shape, match):
    official = official_state(uvit_shapes(4, 32, 2, 4, 4, 11))
    official[key] = torch.zeros(shape, dtype=F64)
    with pytest.raises(LayoutError, match=match):
        convert("uvit", official)


def test_a_dit_checkpoint_given_as_uvit_names_the_fitting_sources():
    from tests.converters.helpers import dit_shapes

    dit = official_state(dit_shapes(depth=1, hidden=8, patch=2, in_channels=4, grid=2, num_classes=3), meta=True)
    with pytest.raises(LayoutError, match=r"unexpected \(x_embedder.*'dit' / 'sit'"):
        convert("uvit", dit)
