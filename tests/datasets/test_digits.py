import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from visionmix.datasets import DigitsDataset, digits_split
from visionmix.datasets.digits import split_indices


def test_split_is_a_fixed_stratified_partition():
    train, test = split_indices("train", 0), split_indices("test", 0)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert not set(train) & set(test)
    labels = load_digits().target
    train_counts, test_counts = np.bincount(labels[train]), np.bincount(labels[test])
    assert np.all(np.abs(test_counts - np.bincount(labels) * 0.2) <= 1)  # stratified
    assert train_counts.sum() == 1437
    assert np.array_equal(split_indices("test", 0), test)
    assert not np.array_equal(split_indices("test", 1), test)  # the seed matters


def test_values_are_scaled_to_uint8():
    images, labels = digits_split("all")
    raw = load_digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert np.array_equal(images, np.rint(raw.images * 255 / 16).astype(np.uint8))
    assert images.max() == 255 and np.array_equal(labels, raw.target)


def test_cached_arrays_cannot_be_edited_through_the_api():
    images, _ = digits_split("train")
    images[:] = 0
    assert digits_split("train")[0].any()
    with pytest.raises(ValueError):
        split_indices("test", 0)[0] = 5


def test_items_at_native_size():
    ds = DigitsDataset(split="test")
    item = ds[0]
    images, labels = digits_split("test")
    assert len(ds) == 360 and ds.num_classes == 10
    assert item["inputs"].dtype == torch.uint8 and item["inputs"].shape == (1, 8, 8)
    assert np.array_equal(item["inputs"][0].numpy(), images[0]) and item["labels"] == labels[0]
    assert DigitsDataset(split="test", class_cond=False)[0]["labels"] == -1


def test_nearest_upsampling_replicates_pixels():
    small = DigitsDataset(split="test")[5]["inputs"]
    big = DigitsDataset(image_size=32, split="test")[5]["inputs"]
    assert big.shape == (1, 32, 32)
    assert torch.equal(big, small.repeat_interleave(4, -1).repeat_interleave(4, -2))


def test_bilinear_upsampling_is_smooth():
    near = DigitsDataset(image_size=16, split="test")[5]["inputs"].float()
    bil = DigitsDataset(image_size=16, split="test", interpolation="bilinear")[5]["inputs"].float()
    assert bil.shape == (1, 16, 16) and not torch.equal(near, bil)
    # averaging 2x2 blocks of the bilinear image stays close to the original digit
    pooled = torch.nn.functional.avg_pool2d(bil[None], 2)[0]
    assert (pooled - near[:, ::2, ::2]).abs().mean() < 20


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        DigitsDataset(split="val")
    with pytest.raises(ValueError, match="interpolation"):
        DigitsDataset(image_size=16, interpolation="bicubic")
