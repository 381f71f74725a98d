import numpy as np
import pytest
import torch

from visionmix.layers.pos_embed import PositionEmbedding, sincos_2d


def mae_table(dim: int, h: int, w: int) -> np.ndarray:
    """The MAE/DiT recipe in numpy: per token (i, j), [sin/cos of j * omega | sin/cos of i * omega]."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))
    out = np.zeros((h * w, dim))
    for i in range(h):
        for j in range(w):
            col, row = j * omega, i * omega
            out[i * w + j] = np.concatenate([np.sin(col), np.cos(col), np.sin(row), np.cos(row)])
    return out


@pytest.mark.parametrize("hw", [(4, 4), (3, 5)])
def test_sincos_matches_the_mae_recipe(hw):
    table = sincos_2d(16, hw).double().numpy()
    np.testing.assert_allclose(table, mae_table(16, *hw), atol=1e-6)


def test_extra_tokens_get_zero_rows():
    table = sincos_2d(8, (2, 2), extra_tokens=2)
    assert table.shape == (6, 8) and table[:2].abs().sum() == 0


def test_frozen_table_is_a_parameter_and_follows_other_grids():
    pe = PositionEmbedding(16, (4, 4), "sincos_frozen")
    assert not pe.pos_embed.requires_grad and pe.pos_embed.numel() == 256
    x = torch.zeros(1, 15, 16)
    out = pe(x, (3, 5))
    np.testing.assert_allclose(out[0].numpy(), mae_table(16, 3, 5), atol=1e-6)


def test_trainable_table_refuses_another_grid():
    pe = PositionEmbedding(16, (4, 4), "sincos")
    assert pe.pos_embed.requires_grad
    with pytest.raises(ValueError, match="trained for a"):
        pe(torch.zeros(1, 15, 16), (3, 5))


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown position embedding"):
        PositionEmbedding(16, (4, 4), "rope")
