import os
import pickle

import numpy as np
import pytest
import torch

from visionmix.datasets import CIFAR10Dataset

PER_BATCH = 4


def _batch(seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"fake", b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, PER_BATCH)], b"filenames": [b"x.png"] * PER_BATCH}


@pytest.fixture
def cifar(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = _batch(i)
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2 if i % 2 else pickle.HIGHEST_PROTOCOL)
    return tmp_path, batches


def test_train_split_concatenates_five_batches_in_order(cifar):
    root, batches = cifar
    ds = CIFAR10Dataset(root, train=True, random_flip=False)
    assert len(ds) == 5 * PER_BATCH and ds.num_classes == 10
    row = batches["data_batch_2"][b"data"][1]
    item = ds[PER_BATCH + 1]
    assert item["inputs"].dtype == torch.uint8 and item["inputs"].shape == (3, 32, 32)
    # a row is the R plane, then G, then B, each 32x32 row-major
    assert item["inputs"][1, 2, 3] == row[1024 + 2 * 32 + 3]
    assert (item["inputs"].flatten().numpy() == row).all()
    assert item["labels"] == batches["data_batch_2"][b"labels"][1]


def test_test_split_and_batch_folder_as_root(cifar):
    root, batches = cifar
    ds = CIFAR10Dataset(root / "cifar-10-batches-py", train=False, random_flip=False)
    assert len(ds) == PER_BATCH
    assert [ds[i]["labels"] for i in range(PER_BATCH)] == batches["test_batch"][b"labels"]


def test_unconditional_and_flip(cifar):
    root, _ = cifar
    ds = CIFAR10Dataset(root, train=False, random_flip=True, class_cond=False)
    plain = CIFAR10Dataset(root, train=False, random_flip=False)[0]["inputs"]
    outs = [ds[0] for _ in range(30)]
    assert {o["labels"] for o in outs} == {-1}
    n_flipped = sum(bool((o["inputs"] == plain.flip(-1)).all()) for o in outs)
    assert 0 < n_flipped < 30
    assert all(bool((o["inputs"] == plain).all() or (o["inputs"] == plain.flip(-1)).all()) for o in outs)


def test_item_does_not_alias_the_stored_array(cifar):
    root, _ = cifar
    ds = CIFAR10Dataset(root, train=False, random_flip=False)
    ds[0]["inputs"].zero_()
    assert ds[0]["inputs"].any()


def test_missing_data_messages(cifar, tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/data_batch_1..5"):
        CIFAR10Dataset(tmp_path / "elsewhere")
    root, _ = cifar
    os.remove(root / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="missing data_batch_3"):
        CIFAR10Dataset(root, train=True)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_batches_cannot_run_code(cifar):
    root, _ = cifar
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        CIFAR10Dataset(root, train=False)
