import numpy as np
import pytest
import torch

from visionmix.datasets import DigitsDataset
from visionmix.evaluation import DigitsScorer


@pytest.fixture(scope="module")
def scorer():
    return DigitsScorer.fit(seed=0)


def test_classifier_generalises_to_held_out_digits(scorer):
    assert scorer.heldout_accuracy >= 0.9


def test_fit_is_cached(scorer):
    assert DigitsScorer.fit(seed=0) is scorer


def test_real_digits_with_true_labels_score_well(scorer):
    images, labels = scorer.real_images("test")
    assert images.shape == (360, 1, 8, 8) and images.min() == -1 and images.max() == 1
    result = scorer.score(images, labels)
    assert result["agreement"] >= 0.9 and result["num_samples"] == 360
    assert set(result["per_class"]) == set(range(10)) and min(result["per_class"].values()) >= 0.8
    assert result["frechet"] == pytest.approx(0.0, abs=1e-6)  # the reference statistics are the test split


def test_frechet_separates_real_digits_from_noise(scorer):
    train, train_labels = scorer.real_images("train")
    real = scorer.score(train, train_labels)["frechet"]
    noise = torch.rand(len(train), 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fake = scorer.score(noise, train_labels)
    assert real * 20 < fake["frechet"]
    assert fake["agreement"] < 0.3
    # damaging real digits moves them away from the reference, monotonically in the damage
    faded = [scorer.score(train * s + (s - 1), train_labels)["frechet"] for s in (1.0, 0.7, 0.4)]
    assert faded[0] < faded[1] < faded[2]


def test_wrong_labels_give_low_agreement(scorer):
    images, labels = scorer.real_images("test")
    result = scorer.score(images, (labels + 1) % 10)
    assert result["agreement"] < 0.1
    assert result["frechet"] == pytest.approx(scorer.score(images, labels)["frechet"])  # label-free


def test_upsampled_samples_are_area_averaged_back(scorer):
    ds = DigitsDataset(image_size=24, split="test")
    big = torch.stack([ds[i]["inputs"] for i in range(len(ds))]).float() / 127.5 - 1
    labels = torch.tensor([ds[i]["labels"] for i in range(len(ds))])
    small, small_labels = scorer.real_images("test")
    assert torch.equal(labels, small_labels)
    assert np.array_equal(scorer.features(big), scorer.features(small))
    assert scorer.score(big, labels)["agreement"] == scorer.score(small, labels)["agreement"]


def test_unconditional_samples_and_bad_inputs(scorer):
    images, labels = scorer.real_images("test")
    result = scorer.score(images[:100], None)
    assert result["agreement"] is None and result["per_class"] is None and result["frechet"] > 0
    with pytest.raises(ValueError, match="one requested label"):
        scorer.score(images, labels[:10])
    with pytest.raises(ValueError, match="one requested label"):
        scorer.score(images[:2], [3, 10])
    with pytest.raises(ValueError, match=r"\(N, 1, H>=8, W>=8\)"):
        scorer.score(images[:, 0], labels)
    assert scorer.predict(images[:5]).tolist() == labels[:5].tolist()
