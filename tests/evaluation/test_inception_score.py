"""Inception Score against closed forms on hand-built logits (and torch-fidelity's implementation as a cross-check)."""
import math

import numpy as np
import pytest
import torch

from visionmix.evaluation.inception_score import inception_score

ONE_HOT = 1e4  # exp(-1e4) underflows to 0 in float64: exactly one-hot predictions


def one_hot_logits(classes, num_classes=1008):
    logits = np.zeros((len(classes), num_classes))
    logits[np.arange(len(classes)), classes] = ONE_HOT
    return logits


def test_identical_predictions_score_one():
    mean, std = inception_score(np.random.default_rng(0).normal(size=(1, 7)).repeat(20, axis=0), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    assert inception_score(np.zeros((10, 1008)), splits=2) == pytest.approx((1.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 37])
def test_k_equiprobable_confident_classes_score_k(k):
    # every split holds each of k classes equally often: KL(one-hot || uniform over k) = log k
    logits = one_hot_logits(np.tile(np.arange(k), 10))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)


def test_two_soft_predictions_by_hand():
    # p1 = (a, 1-a), p2 = (1-a, a): p(y) = (1/2, 1/2), KL = a log 2a + (1-a) log 2(1-a) for both
    a = 0.8
    logits = np.log([[a, 1 - a], [1 - a, a]])
    expected = math.exp(a * math.log(2 * a) + (1 - a) * math.log(2 * (1 - a)))
    assert inception_score(logits, splits=1) == pytest.approx((expected, 0.0), rel=1e-12)


def test_split_mean_and_population_std():
    # part 1: four identical predictions (IS 1); part 2: two classes, two each (IS 2) -> mean 1.5, std 0.5
    logits = np.concatenate([np.zeros((4, 10)), one_hot_logits([0, 1, 0, 1], 10)])
    assert inception_score(logits, splits=2) == pytest.approx((1.5, 0.5), rel=1e-12)
    # consecutive parts of near-equal size: 5 rows in 2 splits are rows 0-1 and 2-4
    logits = np.concatenate([one_hot_logits([0, 1], 10), one_hot_logits([3, 3, 3], 10)])
    assert inception_score(logits, splits=2) == pytest.approx((1.5, 0.5), rel=1e-12)


def test_matches_torch_fidelity_without_shuffling():
    metric_isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = torch.randn(40, 30, generator=torch.Generator().manual_seed(1)) * 3
    theirs = metric_isc.isc_features_to_metric(logits, splits=4, shuffle=False)
    ours = inception_score(logits, splits=4)
    assert ours == pytest.approx((theirs["inception_score_mean"], theirs["inception_score_std"]), rel=1e-10)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="at least one sample per split"):
        inception_score(np.zeros((5, 10)), splits=10)
    with pytest.raises(ValueError, match=r"\(N, classes >= 2\)"):
        inception_score(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        inception_score(np.full((4, 3), np.nan), splits=1)
