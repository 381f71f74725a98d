"""DiCo -> visionmix: the converted U-shape computes DiCo's forward written out on the official weights."""
import argparse

import pytest
import torch
import torch.nn.functional as F

from tests.converters.helpers import F64, assert_loads_at_full_size, converted_model, linear, official_state, time_mlp
from visionmix.converters import LayoutError, convert

STAGES = ("encoder_level_1", "encoder_level_2", "latent", "decoder_level_2", "decoder_level_1")
RELEASED = {"s": (128, [5, 4, 4, 4, 4]), "b": (256, [5, 4, 4, 4, 4]), "l": (352, [9, 8, 9, 8, 9]),
            "xl": (416, [9, 9, 10, 9, 9])}
TINY_DEPTHS = [1, 2, 1, 1, 2]


def dico_shapes(hidden, depths, mlp_ratio=2, in_channels=4, num_classes=1000):
    """dico_models.py's keys: OverlapPatchEmbed, TimestepEmbedder x3, LabelEmbedder_3, DiCoBlocks (conv1-5, ca,
    adaLN), Downsample / Upsample (bias-free 3x3 + pixel (un)shuffle), reduce_chan 1x1s, FinalLayer (3x3)."""
    d, out = hidden, 2 * in_channels
    shapes = {"x_embedder.proj.weight": (d, in_channels, 3, 3), "x_embedder.proj.bias": (d,),
              "down1_2.body.0.weight": (d // 2, d, 3, 3), "down2_3.body.0.weight": (d, 2 * d, 3, 3),
              "up3_2.body.0.weight": (8 * d, 4 * d, 3, 3), "up2_1.body.0.weight": (4 * d, 2 * d, 3, 3),
              "reduce_chan_level2.weight": (2 * d, 4 * d, 1, 1), "reduce_chan_level2.bias": (2 * d,),
              "reduce_chan_level1.weight": (2 * d, 2 * d, 1, 1), "reduce_chan_level1.bias": (2 * d,),
              "final_layer.out_proj.weight": (out, 2 * d, 3, 3), "final_layer.out_proj.bias": (out,),
              "final_layer.adaLN_modulation.1.weight": (4 * d, 2 * d), "final_layer.adaLN_modulation.1.bias": (4 * d,)}
    for i, w in enumerate((d, 2 * d, 4 * d)):
        t = f"t_embedder_{i + 1}.mlp."
        shapes.update({t + "0.weight": (w, 256), t + "0.bias": (w,), t + "2.weight": (w, w), t + "2.bias": (w,),
                       f"y_embedder.embedding_table_{i}.weight": (num_classes + 1, w)})
    for stage, w, depth in zip(STAGES, (d, 2 * d, 4 * d, 2 * d, 2 * d), depths):
        hid = mlp_ratio * w
        for i in range(depth):
            b = f"{stage}.{i}."
            shapes.update({b + "conv1.weight": (w, w, 1, 1), b + "conv1.bias": (w,),
                           b + "conv2.weight": (w, 1, 3, 3), b + "conv2.bias": (w,),
                           b + "conv3.weight": (w, w, 1, 1), b + "conv3.bias": (w,),
                           b + "ca.1.weight": (w, w, 1, 1), b + "ca.1.bias": (w,),
                           b + "conv4.weight": (hid, w, 1, 1), b + "conv4.bias": (hid,),
                           b + "conv5.weight": (w, hid, 1, 1), b + "conv5.bias": (w,),
                           b + "adaLN_modulation.1.weight": (6 * w, w), b + "adaLN_modulation.1.bias": (6 * w,)})
    return shapes


def dico_forward(sd, x, t, y, depths):
    """DiCo.forward on the official state dict (LayerNorm2d without affine, eps 1e-6; exact GELU)."""
    def norm(z):
        return F.layer_norm(z.permute(0, 2, 3, 1), z.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)

    def mod(z, shift, scale):
        return z * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def conv(prefix, z, **kw):
        return F.conv2d(z, sd[prefix + "weight"], sd.get(prefix + "bias"), **kw)

    def block(p, inp, c):
        s1, c1, g1, s2, c2, g2 = linear(sd, p + "adaLN_modulation.1.", F.silu(c)).chunk(6, dim=1)
        h = F.gelu(conv(p + "conv2.", conv(p + "conv1.", mod(norm(inp), s1, c1)), padding=1, groups=inp.shape[1]))
        h = h * torch.sigmoid(conv(p + "ca.1.", F.adaptive_avg_pool2d(h, 1)))
        z = inp + g1[:, :, None, None] * conv(p + "conv3.", h)
        h = conv(p + "conv5.", F.gelu(conv(p + "conv4.", mod(norm(z), s2, c2))))
        return z + g2[:, :, None, None] * h

    def stage(name, z, c, depth):
        for i in range(depth):
            z = block(f"{name}.{i}.", z, c)
        return z

    c1, c2, c3 = (time_mlp(sd, f"t_embedder_{i + 1}.mlp.", t) + sd[f"y_embedder.embedding_table_{i}.weight"][y]
                  for i in range(3))
    e1 = stage("encoder_level_1", conv("x_embedder.proj.", x, padding=1), c1, depths[0])
    e2 = stage("encoder_level_2", F.pixel_unshuffle(conv("down1_2.body.0.", e1, padding=1), 2), c2, depths[1])
    lat = stage("latent", F.pixel_unshuffle(conv("down2_3.body.0.", e2, padding=1), 2), c3, depths[2])
    d2 = conv("reduce_chan_level2.", torch.cat([F.pixel_shuffle(conv("up3_2.body.0.", lat, padding=1), 2), e2], 1))
    d2 = stage("decoder_level_2", d2, c2, depths[3])
    d1 = conv("reduce_chan_level1.", torch.cat([F.pixel_shuffle(conv("up2_1.body.0.", d2, padding=1), 2), e1], 1))
    d1 = stage("decoder_level_1", d1, c2, depths[4])
    shift, scale = linear(sd, "final_layer.adaLN_modulation.1.", F.silu(c2)).chunk(2, dim=1)
    return conv("final_layer.out_proj.", mod(norm(d1), shift, scale), padding=1)


def tiny(seed=0):
    official = official_state(dico_shapes(8, TINY_DEPTHS, num_classes=5), seed=seed)
    return official, dict(input_size=8, hidden_size=8, depths=TINY_DEPTHS, num_classes=5)


@pytest.mark.parametrize("size", list(RELEASED))
def test_converted_model_matches_the_official_forward(size):
    official, shrink = tiny()
    model = converted_model("dico", {"ema": official}, f"configs/dico/dico_{size}_in256.py", **shrink)
    x, t, y = torch.randn(2, 4, 8, 8, dtype=F64), torch.tensor([3, 900]), torch.tensor([4, 5])
    expected = dico_forward(official, x, t, y, TINY_DEPTHS)
    assert expected.shape == (2, 8, 8, 8)
    torch.testing.assert_close(model.backbone(x, t, y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", list(RELEASED))
def test_released_size_loads_strictly(size):
    hidden, depths = RELEASED[size]
    assert_loads_at_full_size("dico", dico_shapes(hidden, depths), f"configs/dico/dico_{size}_in256.py")


def test_ffn_kernels_become_linear_weights():
    official, _ = tiny()
    state = convert("dico", {"ema": official, "model": {}, "opt": {}, "args": argparse.Namespace(model="DiCo-S")})
    fc1 = state["backbone.latent.0.ffn.fc1.weight"]
    assert fc1.shape == (64, 32) and torch.equal(fc1, official["latent.0.conv4.weight"][:, :, 0, 0])


def test_a_non_pointwise_ffn_kernel_is_a_clear_error():
    official, _ = tiny()
    official["latent.0.conv5.weight"] = torch.zeros(32, 64, 3, 3, dtype=F64)
    with pytest.raises(LayoutError, match=r"latent\.0\.conv5\.weight: expected a 1x1 convolution kernel"):
        convert("dico", official)


def test_missing_stage_is_named():
    official, _ = tiny()
    for key in [k for k in official if k.startswith("decoder_level_1.")]:
        del official[key]
    with pytest.raises(LayoutError, match=r"missing \(decoder_level_1\.0\.conv1\.weight"):
        convert("dico", official)
