import pytest
import torch

from tests.conftest import randomize_
from visionmix.backbones import IsotropicBackbone


def tiny(**kw):
    cfg = dict(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=3, num_heads=4, num_classes=10)
    cfg.update(kw)
    return IsotropicBackbone(**cfg)


MODES = [
    dict(conditioning="adaln_zero"),
    dict(conditioning="adaln"),
    dict(conditioning="in_context", pos_embed="learned", init_style="vit", norm_affine=True, learn_sigma=False),
    dict(conditioning="adaln_zero", skip="long", norm_affine=True, first_norm=True, final_norm=True,
         pos_embed="sincos", depth=5),
]


def inputs(b=2, c=3, size=8):
    return torch.randn(b, c, size, size), torch.tensor([10, 700])[:b], torch.tensor([1, 7])[:b]


def test_fresh_adaln_zero_model_outputs_exactly_zero():
    model = tiny()
    x, t, y = inputs()
    out = model(x, t, y)
    assert out.shape == (2, 6, 8, 8) and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m["conditioning"] + "-" + m.get("skip", "none"))
def test_timestep_and_label_change_the_output(mode):
    model = randomize_(tiny(**mode), std=0.2).eval()
    x, t, y = inputs()
    base = model(x, t, y)
    assert base.shape == (2, model.out_channels, 8, 8)
    assert (model(x, t + 100, y) - base).abs().amax(dim=(1, 2, 3)).min() > 1e-6
    assert (model(x, t, (y + 1) % 10) - base).abs().amax(dim=(1, 2, 3)).min() > 1e-6


@pytest.mark.parametrize("guided", [3, None])
def test_cfg_scale_one_equals_the_conditional_output(guided):
    model = randomize_(tiny()).eval()
    x, t, y = inputs()
    cond = model(x, t, y)
    doubled = model.forward_with_cfg(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, 10)]),
                                     cfg_scale=1.0, guided_channels=guided)
    torch.testing.assert_close(doubled[:2], cond, rtol=1e-5, atol=1e-5)
    n = guided or model.in_channels  # the second half repeats the guided noise channels
    torch.testing.assert_close(doubled[2:, :n], cond[:, :n], rtol=1e-5, atol=1e-5)


def test_cfg_extrapolates_only_the_guided_channels():
    model = randomize_(tiny()).eval()
    x, t, y = inputs()
    null = torch.full_like(y, 10)
    cond, uncond = model(x, t, y), model(x, t, null)
    out = model.forward_with_cfg(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]), cfg_scale=4.0)
    torch.testing.assert_close(out[:2, :3], uncond[:, :3] + 4.0 * (cond[:, :3] - uncond[:, :3]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[:2, 3:], cond[:, 3:], rtol=1e-5, atol=1e-5)


def test_long_skips_pair_out_block_j_with_in_block_mirror():
    depth = 7
    model = randomize_(tiny(skip="long", depth=depth)).eval()
    assert len(model.in_blocks) == len(model.out_blocks) == depth // 2
    in_outputs, skip_inputs = {}, {}
    for i, block in enumerate(model.in_blocks):
        block.register_forward_hook(lambda m, a, out, i=i: in_outputs.__setitem__(i, out))
    for j, block in enumerate(model.out_blocks):
        block.register_forward_pre_hook(lambda m, a, j=j: skip_inputs.__setitem__(j, a[3]))
    model(*inputs())
    for j in range(depth // 2):
        assert skip_inputs[j] is in_outputs[depth // 2 - 1 - j]
    assert model.mid_block.skip_linear is None and all(b.skip_linear is None for b in model.in_blocks)


def test_even_depth_long_skips_build_depth_plus_one_blocks_like_uvit():
    model = tiny(skip="long", depth=4)
    assert len(model.in_blocks) + 1 + len(model.out_blocks) == 5


def test_unconditional_model_and_null_label_default():
    model = randomize_(tiny(num_classes=0)).eval()
    x, t, _ = inputs()
    assert model(x, t).shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="unconditional"):
        model(x, t, torch.tensor([1, 2]))
    conditional = randomize_(tiny()).eval()
    torch.testing.assert_close(conditional(x, t), conditional(x, t, torch.tensor([10, 10])))


@pytest.mark.parametrize("pos_embed", ["sincos_frozen", "sincos", "learned", "fuzzy"])
def test_every_position_kind_runs_on_other_sizes(pos_embed):
    model = randomize_(tiny(pos_embed=pos_embed))
    for mode in (model.train, model.eval):
        mode()
        assert model(torch.randn(1, 3, 10, 14), torch.tensor([3]), torch.tensor([2])).shape == (1, 6, 10, 14)


@pytest.mark.parametrize("x,y,match", [
    (torch.randn(1, 3, 9, 8), torch.tensor([1]), "not divisible by patch_size"),
    (torch.randn(1, 4, 8, 8), torch.tensor([1]), "expected 3 input channels"),
    (torch.randn(3, 8, 8), torch.tensor([1]), r"\(B, C, H, W\)"),
    (torch.randn(1, 3, 8, 8), torch.tensor([11]), "class label out of range"),
])
def test_bad_input_is_a_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        tiny()(x, torch.tensor([1]), y)


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        tiny(input_size=9)
    with pytest.raises(ValueError, match="unknown conditioning"):
        tiny(conditioning="film")
    with pytest.raises(KeyError, match="Known token mixers: .*attention"):
        tiny(mixer="nope")


def test_mixer_and_ffn_receive_layer_ids():
    model = tiny(depth=4)
    assert [b.mixer.qkv.in_features for b in model.blocks] == [32] * 4
    assert [type(b.ffn).__name__ for b in model.blocks] == ["MlpFFN"] * 4


def test_grad_checkpointing_gives_the_same_gradients():
    x, t, y = inputs()
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        model = randomize_(tiny(grad_checkpointing=ckpt))
        model(x, t, y).square().sum().backward()
        grads.append(model.x_embedder.proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("mode", MODES[:3], ids=lambda m: m["conditioning"])
def test_timestep_offset_shifts_the_step_number_the_network_sees(mode):
    # U-ViT's released models number steps 1..1000: offset 1 at step t must equal no offset at step t + 1
    shifted = randomize_(tiny(**mode, timestep_offset=1), std=0.2).eval()
    plain = tiny(**mode).eval()
    plain.load_state_dict(shifted.state_dict())
    x, t, y = inputs()
    torch.testing.assert_close(shifted(x, t, y), plain(x, t + 1, y), rtol=0, atol=0)
    assert (shifted(x, t, y) - plain(x, t, y)).abs().max() > 1e-6
