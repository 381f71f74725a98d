import math

import pytest
import torch

from visionmix.layers.qshift import q_shift
from visionmix.mixers.bi_rwkv import BiRWKV


def wkv_loops(w, u, k, v):
    """y_t = sum_i softmax_i(l_ti) v_i with l_ti = -(|t-i|-1) w + k_i (i != t), u + k_t (i == t), in float64."""
    b, t_len, c = k.shape
    y = torch.empty(b, t_len, c, dtype=torch.float64)
    pos = torch.arange(t_len, dtype=torch.float64)
    for t in range(t_len):
        logits = -((pos - t).abs() - 1)[None, :, None] * w.double() + k.double()
        logits[:, t] = u.double() + k[:, t].double()
        y[:, t] = (torch.softmax(logits, dim=1) * v.double()).sum(dim=1)
    return y


@pytest.mark.parametrize("hw", [(4, 4), (5, 7)])
def test_forward_matches_the_paper_formula(hw):
    mixer = BiRWKV(16, layer_id=2, num_layers=5).double()
    with torch.no_grad():
        mixer.spatial_decay.normal_(0, 3)  # both signs
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    shifted = q_shift(x, hw)
    mix = lambda m: x * m + shifted * (1 - m)  # noqa: E731
    k, v, r = mixer.key(mix(mixer.spatial_mix_k)), mixer.value(mix(mixer.spatial_mix_v)), mixer.receptance(mix(mixer.spatial_mix_r))
    n = hw[0] * hw[1]
    expected = mixer.output(torch.sigmoid(r) * wkv_loops(mixer.spatial_decay / n, mixer.spatial_first / n, k, v))
    torch.testing.assert_close(mixer(x, hw), expected, rtol=1e-6, atol=1e-8)


def test_fancy_init_follows_the_rwkv_formulas():
    dim, layer, layers = 8, 1, 4
    m = BiRWKV(dim, layer_id=layer, num_layers=layers)
    r0, r1 = layer / (layers - 1), 1 - layer / layers
    for c in range(dim):
        assert m.spatial_decay[c].item() == pytest.approx(-5 + 8 * (c / (dim - 1)) ** (0.7 + 1.3 * r0), abs=1e-5)
        assert m.spatial_first[c].item() == pytest.approx(math.log(0.3) + 0.5 * ((c + 1) % 3 - 1), abs=1e-6)
        ramp = c / dim
        assert m.spatial_mix_k[0, 0, c].item() == pytest.approx(ramp ** r1, abs=1e-6)
        assert m.spatial_mix_v[0, 0, c].item() == pytest.approx(ramp ** r1 + 0.3 * r0, abs=1e-6)
        assert m.spatial_mix_r[0, 0, c].item() == pytest.approx(ramp ** (0.5 * r1), abs=1e-6)


def test_official_parameter_names_and_no_biases():
    names = {n for n, _ in BiRWKV(8).named_parameters()}
    assert names == {"spatial_decay", "spatial_first", "spatial_mix_k", "spatial_mix_v", "spatial_mix_r",
                     "key.weight", "value.weight", "receptance.weight", "output.weight"}


def test_gradients_flow_to_decay_and_first():
    m = BiRWKV(8)
    m(torch.randn(2, 12, 8), (3, 4)).square().sum().backward()
    assert m.spatial_decay.grad.abs().sum() > 0 and m.spatial_first.grad.abs().sum() > 0


def test_wrong_token_count_is_a_clear_error():
    with pytest.raises(ValueError, match="H\\*W"):
        BiRWKV(8)(torch.randn(1, 13, 8), (3, 4))
