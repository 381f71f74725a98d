import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from visionmix.datasets import LatentDataset
from visionmix.datasets.latents import (FORMAT, META_FILE, VERSION, read_meta, save_json_atomic, save_shard,
                                        shard_entry, shard_is_complete)

SHAPE = (4, 2, 3)


def _write(root, counts=(3, 2), dtype=np.float32, complete=True, labels_offset=0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards, all_latents = [], []
    for s, n in enumerate(counts):
        z = rng.standard_normal((n, 2, *SHAPE)).astype(dtype)
        shards.append(save_shard(root, s, z, np.arange(n) + 10 * s + labels_offset))
        all_latents.append(z)
    meta = dict(format=FORMAT, version=VERSION, complete=complete, count=sum(counts), latent_shape=list(SHAPE),
                classes=[str(i) for i in range(20)], shards=shards)
    save_json_atomic(root / META_FILE, meta)
    return np.concatenate(all_latents)


def test_items_follow_shard_order(tmp_path):
    z = _write(tmp_path)
    ds = LatentDataset(tmp_path, random_flip=False)
    assert len(ds) == 5 and ds.num_classes == 20 and ds.latent_shape == SHAPE
    item = ds[3]  # first item of the second shard
    assert item["inputs"].dtype == torch.float32 and item["inputs"].shape == SHAPE
    assert torch.equal(item["inputs"], torch.from_numpy(z[3, 0])) and item["labels"] == 10
    assert torch.equal(ds[-1]["inputs"], torch.from_numpy(z[4, 0]))
    with pytest.raises(IndexError):
        ds[5]


def test_random_flip_picks_the_flipped_copy_half_the_time(tmp_path):
    z = _write(tmp_path)
    copies = [torch.from_numpy(z[0, 0]), torch.from_numpy(z[0, 1])]
    ds = LatentDataset(tmp_path, random_flip=True)
    picks = []
    for _ in range(200):
        x = ds[0]["inputs"]
        picks.append([k for k in (0, 1) if torch.equal(x, copies[k])])
    assert all(len(p) == 1 for p in picks)  # always exactly one of the two stored copies
    assert 60 < sum(p[0] for p in picks) < 140


def test_float16_storage_reads_as_float32_and_unconditional_labels(tmp_path):
    z = _write(tmp_path, dtype=np.float16)
    ds = LatentDataset(tmp_path, random_flip=False, class_cond=False)
    assert ds[1]["inputs"].dtype == torch.float32 and ds[1]["labels"] == -1
    assert torch.equal(ds[1]["inputs"], torch.from_numpy(z[1, 0].astype(np.float32)))


def test_works_in_dataloader_workers(tmp_path):
    _write(tmp_path)
    ds = LatentDataset(tmp_path, random_flip=False)
    ds[0]  # opens a memory map in this process; it must not be pickled into the workers
    assert not ds.__getstate__()["_maps"]
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert torch.cat([b["labels"] for b in batches]).tolist() == [0, 1, 2, 10, 11]
    assert batches[0]["inputs"].shape == (2, *SHAPE)


def test_incomplete_extraction_is_refused(tmp_path):
    _write(tmp_path, complete=False)
    with pytest.raises(RuntimeError, match="incomplete.*resume"):
        LatentDataset(tmp_path)


def test_missing_folder_and_missing_meta(tmp_path):
    with pytest.raises(FileNotFoundError, match="visionmix extract-latents"):
        LatentDataset(tmp_path / "none")
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        LatentDataset(tmp_path / "x")


def test_wrong_format_and_mismatched_shards_are_caught(tmp_path):
    _write(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    save_json_atomic(tmp_path / META_FILE, dict(meta, latent_shape=[4, 4, 4]))
    with pytest.raises(ValueError, match="has shape"):
        LatentDataset(tmp_path)
    save_json_atomic(tmp_path / META_FILE, dict(meta, count=7))
    with pytest.raises(ValueError, match="count=7"):
        LatentDataset(tmp_path)
    save_json_atomic(tmp_path / META_FILE, dict(meta, format="other"))
    with pytest.raises(ValueError, match="not a visionmix-latents"):
        read_meta(tmp_path)


def test_shard_writes_are_atomic_and_checkable(tmp_path):
    z = np.zeros((2, 2, *SHAPE), np.float32)
    assert save_shard(tmp_path, 7, z, np.array([1, 2])) == shard_entry(7, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels_00007.npy", "latents_00007.npy"]  # no temp files
    assert shard_is_complete(tmp_path, 7, 2, SHAPE)
    assert not shard_is_complete(tmp_path, 7, 3, SHAPE) and not shard_is_complete(tmp_path, 8, 2, SHAPE)
    data = (tmp_path / "latents_00007.npy").read_bytes()
    (tmp_path / "latents_00007.npy").write_bytes(data[:40])  # a torn copy: header unreadable
    assert not shard_is_complete(tmp_path, 7, 2, SHAPE)
    with pytest.raises(ValueError, match="shard is latents"):
        save_shard(tmp_path, 0, np.zeros((2, 1, *SHAPE)), np.zeros(2))
