import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from visionmix.backbones import UNetBackbone
from visionmix.layers.embedders import timestep_embedding

# DiCo's published sizes (official dico_models.py): width, depths, FFN ratio -> exact parameter count
DICO = {
    "S": (128, [5, 4, 4, 4, 4], 2, 33_137_672),
    "B": (256, [5, 4, 4, 4, 4], 2, 129_992_712),
    "L": (352, [9, 8, 9, 8, 9], 2, 463_897_992),
    "XL": (416, [9, 9, 10, 9, 9], 2, 701_151_368),
    "H": (416, [14, 12, 10, 12, 14], 4, 1_037_408_328),
}


def tiny(**kw) -> UNetBackbone:
    args = dict(input_size=8, in_channels=3, hidden_size=8, depths=[1, 2, 1, 1, 2], num_classes=5, head_dim=8)
    return UNetBackbone(**{**args, **kw})


@pytest.mark.parametrize("size", list(DICO))
def test_official_parameter_counts(size):
    width, depths, ratio, params = DICO[size]
    with torch.device("meta"):
        model = UNetBackbone(32, 4, width, depths, ffn=dict(type="mlp", mlp_ratio=ratio, act="gelu"))
    assert sum(p.numel() for p in model.parameters()) == params


def dico_reference(sd: dict, x, t, y, depths):
    """DiCo's forward written out with functional calls on the official layer layout (the paper's Fig. 3)."""
    def ln2d(z):
        return F.layer_norm(z.permute(0, 2, 3, 1), z.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)

    def mod(z, shift, scale):
        return z * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def block(p, z, c):
        s1, c1, g1, s2, c2, g2 = F.linear(F.silu(c), sd[p + "adaLN_modulation.linear.weight"],
                                          sd[p + "adaLN_modulation.linear.bias"]).chunk(6, dim=1)
        h = mod(ln2d(z), s1, c1)
        h = F.conv2d(h, sd[p + "mixer.conv1.weight"], sd[p + "mixer.conv1.bias"])
        h = F.gelu(F.conv2d(h, sd[p + "mixer.conv2.weight"], sd[p + "mixer.conv2.bias"], padding=1, groups=h.shape[1]))
        gate = torch.sigmoid(F.conv2d(h.mean((2, 3), keepdim=True), sd[p + "mixer.ca.1.weight"], sd[p + "mixer.ca.1.bias"]))
        h = F.conv2d(h * gate, sd[p + "mixer.conv3.weight"], sd[p + "mixer.conv3.bias"])
        z = z + g1[:, :, None, None] * h
        h = mod(ln2d(z), s2, c2)
        h = F.gelu(F.conv2d(h, sd[p + "ffn.fc1.weight"][:, :, None, None], sd[p + "ffn.fc1.bias"]))
        return z + g2[:, :, None, None] * F.conv2d(h, sd[p + "ffn.fc2.weight"][:, :, None, None], sd[p + "ffn.fc2.bias"])

    def temb(i):
        mlp = f"t_embedder_{i}.mlp."
        h = F.silu(F.linear(timestep_embedding(t, 256).double(), sd[mlp + "0.weight"], sd[mlp + "0.bias"]))
        return F.linear(h, sd[mlp + "2.weight"], sd[mlp + "2.bias"])

    cond = [temb(i + 1) + sd[f"y_embedder.embedding_table_{i}.weight"][y] for i in range(3)]

    def stage(name, z, c, n):
        for i in range(n):
            z = block(f"{name}.{i}.", z, c)
        return z

    h = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], padding=1)
    e1 = stage("encoder_level_1", h, cond[0], depths[0])
    e2 = stage("encoder_level_2", F.pixel_unshuffle(F.conv2d(e1, sd["down1_2.body.0.weight"], padding=1), 2),
               cond[1], depths[1])
    lat = stage("latent", F.pixel_unshuffle(F.conv2d(e2, sd["down2_3.body.0.weight"], padding=1), 2), cond[2], depths[2])
    up = F.pixel_shuffle(F.conv2d(lat, sd["up3_2.body.0.weight"], padding=1), 2)
    d2 = F.conv2d(torch.cat([up, e2], 1), sd["reduce_chan_level2.weight"], sd["reduce_chan_level2.bias"])
    d2 = stage("decoder_level_2", d2, cond[1], depths[3])
    up = F.pixel_shuffle(F.conv2d(d2, sd["up2_1.body.0.weight"], padding=1), 2)
    d1 = F.conv2d(torch.cat([up, e1], 1), sd["reduce_chan_level1.weight"], sd["reduce_chan_level1.bias"])
    d1 = stage("decoder_level_1", d1, cond[1], depths[4])
    shift, scale = F.linear(F.silu(cond[1]), sd["final_layer.adaLN_modulation.linear.weight"],
                            sd["final_layer.adaLN_modulation.linear.bias"]).chunk(2, dim=1)
    return F.conv2d(mod(ln2d(d1), shift, scale), sd["final_layer.out_proj.weight"], sd["final_layer.out_proj.bias"],
                    padding=1)


def test_matches_the_dico_forward_written_out():
    model = randomize_(tiny(ffn=dict(type="mlp", mlp_ratio=2, act="gelu")).double()).eval()
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    t, y = torch.tensor([3, 700]), torch.tensor([1, 4])
    expected = dico_reference(model.state_dict(), x, t, y, model.depths)
    torch.testing.assert_close(model(x, t, y), expected, rtol=1e-9, atol=1e-9)


def test_fresh_model_outputs_exactly_zero():
    out = tiny()(torch.randn(2, 3, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    assert out.shape == (2, 6, 8, 8) and not out.any()


def test_token_mixer_stages_convert_once_per_stage():
    model = randomize_(tiny(mixer="attention"))
    seen, conversions = [], []
    for block in model.modules():
        if hasattr(block, "mixer"):
            block.mixer.register_forward_pre_hook(lambda m, args: seen.append(args[0].ndim))
    import visionmix.backbones.unet as unet
    original = unet.to_layout
    unet.to_layout = lambda x, layout, hw: conversions.append(layout) or original(x, layout, hw)
    try:
        model(torch.randn(1, 3, 8, 8), torch.tensor([5]), torch.tensor([2]))
    finally:
        unet.to_layout = original
    assert set(seen) == {3} and len(seen) == sum(model.depths)  # every attention block saw tokens
    assert conversions == ["tokens", "grid"] * 5  # once in, once out, per stage


def test_heads_follow_the_level_width():
    model = tiny(mixer="attention", hidden_size=16, head_dim=8)
    heads = [stage[0].mixer.num_heads for stage in (model.encoder_level_1, model.encoder_level_2, model.latent,
                                                     model.decoder_level_2, model.decoder_level_1)]
    assert heads == [2, 4, 8, 4, 4]


def test_cfg_and_null_label():
    model = randomize_(tiny()).eval()
    x, t = torch.randn(4, 3, 8, 8), torch.tensor([10] * 4)
    y = torch.tensor([1, 2, 5, 5])
    out = model.forward_with_cfg(x, t, y, cfg_scale=1.0, guided_channels=None)
    torch.testing.assert_close(out[:2], model(x[:2], t[:2], y[:2]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x, t, None), model(x, t, torch.full((4,), 5)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(conditioning="in_context"), "in_context"),
    (dict(input_size=10), "not divisible by 4"),
    (dict(depths=[1, 1]), "2L - 1 entries"),
    (dict(mixer="no_such_mixer"), "Known token mixers"),
    (dict(mixer=dict(type="dico_conv", kernel=5)), "did you mean 'kernel_size'"),
])
def test_bad_construction_is_a_clear_error(kwargs, match):
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        tiny(**kwargs)


def test_bad_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by 4"):
        tiny()(torch.randn(1, 3, 8, 6), torch.tensor([1]), torch.tensor([0]))


@pytest.mark.parametrize("levels", [2, 4])
def test_other_level_counts_follow_dicos_rule(levels):
    """Level i at D 2^(i-1), decoder 1 at 2D, resamplers and 1x1 joins named as DiCo names them; counted by hand."""
    d = 8
    model = tiny(input_size=16, depths=[1] * (2 * levels - 1))
    names = {name for name, _ in model.named_children()}
    assert {f"down{i}_{i + 1}" for i in range(1, levels)} | {f"up{i + 1}_{i}" for i in range(1, levels)} <= names
    widths = [d * 2 ** i for i in range(levels)]
    decoder = [2 * d] + widths[1:-1]
    below = [widths[-1]] + decoder[:0:-1]  # into decoder i, i = L-1 .. 1
    expected = sum(w * (w // 2) * 9 for w in widths[:-1])  # downs: 3x3 convs n -> n/2, no bias
    expected += sum(b * 2 * b * 9 for b in below)  # ups: 3x3 convs n -> 2n, no bias
    expected += sum((b // 2 + widths[i - 1]) * decoder[i - 1] + decoder[i - 1]
                    for i, b in zip(range(levels - 1, 0, -1), below))  # 1x1 joins with bias
    resamplers = [m for n, m in model.named_children() if n.startswith(("down", "up", "reduce_chan"))]
    assert sum(p.numel() for m in resamplers for p in m.parameters()) == expected
    x = torch.randn(2, 3, 16, 16)
    assert model(x, torch.tensor([1, 500]), torch.tensor([0, 4])).shape == (2, 6, 16, 16)
    with pytest.raises(ValueError, match=f"not divisible by {2 ** (levels - 1)} \\({levels - 1} 2x downsamplings\\)"):
        model(torch.randn(1, 3, 17, 17), torch.tensor([1]), torch.tensor([0]))
