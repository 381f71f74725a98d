import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from visionmix.datasets import CorruptImageWarning, ImageFolderDataset, adm_center_crop


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- the ADM center crop ------------------------------------------------------------------------------

def test_crop_of_exact_size_image_is_identity():
    a = _noise(32, 32)
    assert (np.array(adm_center_crop(Image.fromarray(a), 32)) == a).all()


def test_box_halving_is_an_exact_2x2_average():
    a = _noise(32, 32)
    doubled = np.kron(a, np.ones((2, 2, 1), np.uint8))  # each pixel a constant 2x2 block
    assert (np.array(adm_center_crop(Image.fromarray(doubled), 32)) == a).all()


def test_crop_follows_the_adm_size_sequence():
    # 1000x600 @ 256: short side 600 >= 512 -> box to 500x300; bicubic to (round(500*256/300), 256) = 427x256;
    # crop left (427-256)//2 = 85
    image = Image.fromarray(_noise(600, 1000))
    expected = image.resize((500, 300), Image.BOX).resize((427, 256), Image.BICUBIC).crop((85, 0, 341, 256))
    out = adm_center_crop(image, 256)
    assert out.size == (256, 256)
    assert (np.array(out) == np.array(expected)).all()


def test_crop_keeps_the_centre_and_drops_the_sides():
    a = np.zeros((150, 300, 3), np.uint8)
    a[:, :70] = (255, 0, 0)      # left margin: outside the central 150x150 window
    a[:, 145:155] = (0, 255, 0)  # central stripe
    out = np.array(adm_center_crop(Image.fromarray(a), 64)).astype(int)
    assert out[:, :, 0].max() < 40  # no red left
    assert out[:, 30:34, 1].min() > 200 and out[:, :20, 1].max() < 40


# ---- the dataset ----------------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "train"
    _save(root / "n02" / "b.png", _noise(40, 50, 1))
    _save(root / "n02" / "a.JPEG", _noise(30, 30, 2))
    _save(root / "n01" / "deeper" / "c.png", _noise(24, 20, 3))
    (root / "n01" / "notes.txt").write_text("not an image")
    (root / "n00_empty").mkdir()
    return root


def test_items_classes_and_order(folder):
    ds = ImageFolderDataset(folder, image_size=16, random_flip=False)
    assert ds.classes == ["n01", "n02"] and ds.num_classes == 2  # sorted; empty folders ignored
    assert [p.name for p, _ in ds.samples] == ["c.png", "a.JPEG", "b.png"]
    assert [label for _, label in ds.samples] == [0, 1, 1]
    item = ds[1]
    assert set(item) == {"inputs", "labels"} and item["labels"] == 1 and isinstance(item["labels"], int)
    assert item["inputs"].dtype == torch.uint8 and item["inputs"].shape == (3, 16, 16)


def test_out_of_range_index_raises(folder):
    ds = ImageFolderDataset(folder, image_size=8)
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds[-1]["labels"] == 1
    assert len(list(ds)) == 3  # plain iteration stops at the end instead of cycling


def test_unconditional_labels_are_minus_one(folder):
    ds = ImageFolderDataset(folder, image_size=8, class_cond=False)
    assert len(ds) == 3 and {ds[i]["labels"] for i in range(3)} == {-1}


def test_random_flip_has_its_own_seeded_stream(folder):
    plain = ImageFolderDataset(folder, image_size=16, random_flip=False)[0]["inputs"]
    torch.manual_seed(1)
    ds = ImageFolderDataset(folder, image_size=16, random_flip=True)
    first = [ds[0]["inputs"] for _ in range(20)]
    flipped = [bool((x == plain.flip(-1)).all()) for x in first]
    assert all(bool((x == plain).all()) or f for x, f in zip(first, flipped))
    assert 0 < sum(flipped) < 20
    torch.manual_seed(1)
    again = ImageFolderDataset(folder, image_size=16, random_flip=True)
    global_state = torch.get_rng_state()
    assert all(bool((again[0]["inputs"] == x).all()) for x in first)  # same seed, same flips
    assert torch.equal(torch.get_rng_state(), global_state)  # and the global generator is untouched


def test_corrupt_image_is_skipped_with_one_warning(folder):
    bad = folder / "n01" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = ImageFolderDataset(folder, image_size=8, random_flip=False)
    index = [p for p, _ in ds.samples].index(bad)
    with pytest.warns(CorruptImageWarning, match="bad.png"):
        item = ds[index]
    nxt = ds[index + 1]
    assert item["labels"] == nxt["labels"] and (item["inputs"] == nxt["inputs"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[index]  # known bad: skipped silently the second time


def test_truncated_image_is_skipped(folder):
    good = folder / "n02" / "b.png"
    data = good.read_bytes()
    (folder / "n02" / "c_truncated.png").write_bytes(data[: len(data) // 2])
    ds = ImageFolderDataset(folder, image_size=8, random_flip=False)
    with pytest.warns(CorruptImageWarning, match="c_truncated.png"):
        items = [ds[i] for i in range(len(ds))]
    assert len(items) == 4


def test_all_corrupt_folder_raises_instead_of_looping(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "c" / f"{name}.jpg").parent.mkdir(exist_ok=True)
        (tmp_path / "c" / f"{name}.jpg").write_bytes(b"garbage")
    ds = ImageFolderDataset(tmp_path, image_size=8)
    with pytest.warns(CorruptImageWarning), pytest.raises(RuntimeError, match="none of the 2 image files"):
        ds[0]


def test_missing_and_empty_roots_explain_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.*<root>/<class_id>/<image>\.JPEG.*data_root"):
        ImageFolderDataset(tmp_path / "nope", image_size=8)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no such images"):
        ImageFolderDataset(tmp_path / "empty", image_size=8)
