import math

import pytest
import torch

from visionmix.layers.embedders import LabelEmbedder, TimestepEmbedder, timestep_embedding


def test_timestep_embedding_closed_form():
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = timestep_embedding(t, 8)
    for b, tb in enumerate(t.tolist()):
        for i in range(4):
            freq = math.exp(-math.log(10000) * i / 4)
            assert emb[b, i].item() == pytest.approx(math.cos(tb * freq), abs=1e-4)
            assert emb[b, 4 + i].item() == pytest.approx(math.sin(tb * freq), abs=1e-4)


def test_raw_sinusoid_mode_has_no_parameters():
    emb = TimestepEmbedder(12, mlp=False)
    assert sum(p.numel() for p in emb.parameters()) == 0
    torch.testing.assert_close(emb(torch.tensor([5.0])), timestep_embedding(torch.tensor([5.0]), 12))


def test_label_table_has_a_null_row_and_drops_labels():
    emb = LabelEmbedder(10, 4, dropout_prob=0.5)
    assert emb.embedding_table.num_embeddings == 11 and emb.null_id == 10
    y = torch.arange(10).repeat(100)
    dropped = emb.drop_labels(y)
    frac = (dropped == 10).float().mean().item()
    assert 0.4 < frac < 0.6
    assert torch.equal(dropped[dropped != 10], y[dropped != 10])
    forced = emb.drop_labels(torch.tensor([1, 2]), force_drop=torch.tensor([1, 0]))
    assert forced.tolist() == [10, 2]


def test_eval_mode_keeps_labels():
    emb = LabelEmbedder(10, 4, dropout_prob=1.0).eval()
    torch.testing.assert_close(emb(torch.tensor([3])), emb.embedding_table.weight[3:4])


@pytest.mark.parametrize("bad", [[-1], [11]])
def test_out_of_range_labels_are_a_clear_error(bad):
    with pytest.raises(ValueError, match="class label out of range"):
        LabelEmbedder(10, 4)(torch.tensor(bad))


def test_per_level_label_tables_share_one_dropout_mask():
    emb = LabelEmbedder(10, [4, 8, 16], dropout_prob=0.5).train()
    assert [t.weight.shape for t in emb.tables()] == [(11, 4), (11, 8), (11, 16)]
    y = torch.arange(10).repeat(20)
    outs = emb(y)
    dropped = [(o == t.weight[10]).all(dim=1) for o, t in zip(outs, emb.tables())]
    assert 0 < int(dropped[0].sum()) < len(y)
    assert torch.equal(dropped[0], dropped[1]) and torch.equal(dropped[0], dropped[2])
