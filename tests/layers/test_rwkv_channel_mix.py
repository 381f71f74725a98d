import torch

from visionmix.layers.qshift import q_shift
from visionmix.layers.rwkv_channel_mix import RWKVChannelMix


def test_channel_mix_formula_and_hidden_width():
    ffn = RWKVChannelMix(8, hidden_rate=4, layer_id=1, num_layers=3)
    assert ffn.key.out_features == 32 and ffn.value.in_features == 32
    x, hw = torch.randn(2, 15, 8), (3, 5)
    s = q_shift(x, hw)
    xk = x * ffn.spatial_mix_k + s * (1 - ffn.spatial_mix_k)
    xr = x * ffn.spatial_mix_r + s * (1 - ffn.spatial_mix_r)
    expected = torch.sigmoid(ffn.receptance(xr)) * ffn.value(torch.relu(ffn.key(xk)) ** 2)
    torch.testing.assert_close(ffn(x, hw), expected)


def test_without_shift_there_are_no_mix_parameters():
    names = {n for n, _ in RWKVChannelMix(8, shift_pixel=0).named_parameters()}
    assert names == {"key.weight", "receptance.weight", "value.weight"}
