import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


def test_trainable_table_is_resampled_bicubically_for_another_grid():
    pe = PositionEmbedding(4, (4, 4), "learned", extra_tokens=1)
    grid = pe.pos_embed[0, 1:].reshape(4, 4, 4).permute(2, 0, 1)[None]
    expected = F.interpolate(grid, size=(3, 5), mode="bicubic", antialias=True).flatten(2).transpose(1, 2)
    out = pe(torch.zeros(1, 16, 4), (3, 5))
    torch.testing.assert_close(out[0, 0], pe.pos_embed[0, 0])  # the extra token keeps its row
    torch.testing.assert_close(out[:, 1:], expected, rtol=1e-5, atol=1e-6)


def test_fuzzy_is_exact_on_the_trained_grid_at_eval_and_jitters_in_training():
    pe = PositionEmbedding(8, (4, 4), "fuzzy").eval()
    x = torch.zeros(2, 16, 8)
    torch.testing.assert_close(pe(x, (4, 4)), pe.pos_embed.expand(2, -1, -1))
    pe.train()
    jittered = pe(x, (4, 4))
    assert not torch.allclose(jittered[0], jittered[1])  # each sample draws its own offsets
    table = pe.pos_embed[0].reshape(4, 4, 8)
    # a token moves at most half a cell, so its position stays within the bilinear hull of its neighbours
    assert (jittered[0].reshape(4, 4, 8) - table).abs().max() <= (table.diff(dim=0).abs().max()
                                                                   + table.diff(dim=1).abs().max())


def test_fuzzy_reads_other_grids_by_bilinear_sampling():
    pe = PositionEmbedding(4, (2, 2), "fuzzy").eval()
    with torch.no_grad():
        pe.pos_embed.copy_(torch.tensor([[0.0], [1.0], [2.0], [3.0]]).expand(4, 4)[None])
    out = pe(torch.zeros(1, 16, 4), (4, 4))[0, :, 0].reshape(4, 4)
    # centres of a 4x4 grid sit at 1/4 and 3/4 of the 2x2 grid's cells: corners clamp, the rest interpolate
    expected_rows = torch.tensor([0.0, 0.5, 1.5, 2.0])
    expected_cols = torch.tensor([0.0, 0.25, 0.75, 1.0])
    torch.testing.assert_close(out, expected_rows[:, None] + expected_cols[None, :])


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown position embedding"):
        PositionEmbedding(16, (4, 4), "rope")
