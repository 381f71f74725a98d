import pytest
import torch.nn as nn

import visionmix
from visionmix.mixers.attention import Attention
from visionmix.registry import MIXERS, UnknownComponentError, as_config, build


def test_attention_is_listed():
    assert "attention" in visionmix.list_mixers()
    assert "mlp" in visionmix.list_ffns()


@pytest.mark.parametrize("spec", ["attention", Attention, "visionmix.mixers.attention.Attention",
                                  {"type": "attention", "qkv_bias": False}])
def test_build_accepts_name_class_path_and_dict(spec):
    mixer = build(MIXERS, spec, dim=32, num_heads=4)
    assert isinstance(mixer, Attention)


def test_dict_kwargs_override_defaults():
    mixer = build(MIXERS, {"type": "attention", "qkv_bias": False}, dim=32, num_heads=4)
    assert mixer.qkv.bias is None


def test_unknown_mixer_lists_known_ones():
    with pytest.raises(UnknownComponentError) as err:
        build(MIXERS, "no_such_mixer", dim=32, num_heads=4)
    message = str(err.value)
    assert "no_such_mixer" in message and "attention" in message


def test_build_model_builds_a_bare_backbone_by_short_name():
    model = visionmix.build_model(dict(type="isotropic", input_size=8, patch_size=2, in_channels=3,
                                       hidden_size=32, depth=2, num_heads=4, num_classes=10))
    assert isinstance(model, nn.Module) and model.out_channels == 6


def test_unknown_mixer_option_names_the_mixer_and_its_options():
    with pytest.raises(TypeError, match=r"'Attention' has no option 'qkvbias' \(did you mean 'qkv_bias'.*accepts: qkv_bias"):
        build(MIXERS, dict(type="attention", qkvbias=False), dim=32, num_heads=4)


def test_one_string_spec_parses_options():
    assert as_config("retnet:decomposed=true,initial_value=2.5") == dict(type="retnet", decomposed=True,
                                                                         initial_value=2.5)
    assert as_config("attention") == dict(type="attention")
    with pytest.raises(ValueError, match="name:key=value"):
        as_config("retnet:decomposed")
