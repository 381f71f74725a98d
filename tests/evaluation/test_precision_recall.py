"""k-NN precision/recall against point clouds whose answers are known or computed by hand."""
import numpy as np
import pytest
import torch

from visionmix.evaluation.precision_recall import knn_radii, precision_recall


def on_line(xs):
    """Points on the x axis of the plane (float64: distances exact)."""
    return np.stack([np.asarray(xs, np.float64), np.zeros(len(xs))], axis=1)


def test_identical_sets_are_fully_precise_and_covered():
    points = np.random.default_rng(0).normal(size=(30, 8))
    assert precision_recall(points, points.copy()) == {"precision": 1.0, "recall": 1.0}


def test_far_apart_sets_score_zero():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(20, 4)), rng.normal(size=(25, 4)) + 1000.0
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_radii_by_hand():
    # k = 3 on {0, 1, 2, 3}: 0 -> (1, 2, 3) -> 3; 1 -> (1, 1, 2) -> 2; 2 -> 2; 3 -> 3
    assert knn_radii(torch.tensor(on_line([0, 1, 2, 3])), k=3).tolist() == [3.0, 2.0, 2.0, 3.0]
    # a duplicate is a neighbour at distance 0 (only the point itself is left out)
    assert knn_radii(torch.tensor(on_line([0, 0, 5])), k=1).tolist() == [0.0, 0.0, 5.0]


def test_partial_overlap_by_hand():
    # k = 1. reference {0, 1, 10, 12}: radii 1, 1, 2, 2 -> manifold [-1, 2] u [8, 14]
    # samples {0.5, 1.5, 20, 21}: radii 1, 1, 1, 1 -> manifold [-0.5, 2.5] u [19, 22]
    # precision: 0.5 and 1.5 inside, 20 and 21 outside -> 1/2; recall: 0 and 1 inside, 10 and 12 outside -> 1/2
    assert precision_recall(on_line([0, 1, 10, 12]), on_line([0.5, 1.5, 20, 21]), k=1) == \
        {"precision": 0.5, "recall": 0.5}
    # k = 3. reference {0, 1, 2, 3}: manifold [-3, 6]; samples {0.5, 5, 7, 10} -> 0.5 and 5 inside: precision 1/2.
    # sample radii 9.5, 5, 6.5, 9.5: the ball of 0.5 alone covers every reference point: recall 1
    assert precision_recall(on_line([0, 1, 2, 3]), on_line([0.5, 5, 7, 10]), k=3) == \
        {"precision": 0.5, "recall": 1.0}


def test_balls_are_closed_and_batching_does_not_matter():
    # reference {0, 1}, k = 1: balls of radius 1 -> [-1, 2]; a sample exactly at 2 is inside
    assert precision_recall(on_line([0, 1]), on_line([2, 2.5]), k=1)["precision"] == 0.5
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(23, 3)), rng.normal(size=(17, 3)) + 0.7
    assert precision_recall(real, fake, batch_size=4) == precision_recall(real, fake, batch_size=1000)


def test_matches_torch_fidelity():
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(40, 6, generator=gen, dtype=torch.float64), \
        torch.randn(35, 6, generator=gen, dtype=torch.float64) * 1.3 + 0.4
    precision, recall = metric_prc.calculate_precision_recall_full(fake, real, neighborhood=3)
    assert precision_recall(real, fake, k=3) == pytest.approx({"precision": precision, "recall": recall})


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="differ in width"):
        precision_recall(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="more than k=3 points"):
        precision_recall(np.zeros((3, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        precision_recall(np.zeros(5), np.zeros((5, 1)))
