import torch

from visionmix.layers.conditioning import AdaLNModulation, modulate
from visionmix.layers.ffn import MlpFFN
from visionmix.layers.layout import channel_norm, to_layout


def test_to_layout_round_trip_is_row_major():
    grid = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    tokens = to_layout(grid, "tokens", (4, 5))
    assert tokens.shape == (2, 20, 3)
    assert tokens[1, 2 * 5 + 3, 1] == grid[1, 1, 2, 3]  # token index = row * W + col
    torch.testing.assert_close(to_layout(tokens, "grid", (4, 5)), grid)
    assert to_layout(grid, "grid", (4, 5)) is grid


def test_norm_modulate_and_pointwise_ffn_agree_across_layouts():
    grid = torch.randn(2, 8, 3, 5)
    tokens = to_layout(grid, "tokens", (3, 5))
    shift, scale = torch.randn(2, 8), torch.randn(2, 8)
    g = modulate(channel_norm(8, "grid")(grid), shift, scale)
    t = modulate(channel_norm(8, "tokens")(tokens), shift, scale)
    torch.testing.assert_close(to_layout(g, "tokens", (3, 5)), t)
    ffn = MlpFFN(8, mlp_ratio=2, act="gelu")
    torch.testing.assert_close(to_layout(ffn(grid, (3, 5)), "tokens", (3, 5)), ffn(tokens, (3, 5)), rtol=1e-5, atol=1e-6)


def test_adaln_modulation_maps_condition_width_to_block_width():
    mod = AdaLNModulation(12, 6, cond_dim=20)
    assert mod.linear.weight.shape == (72, 20)
    chunks = mod(torch.randn(3, 20))
    assert len(chunks) == 6 and all(c.shape == (3, 12) and not c.any() for c in chunks)
