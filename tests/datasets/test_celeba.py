import numpy as np
import pytest
import torch
from PIL import Image

from visionmix.datasets import CelebADataset, celeba_crop


def _coords_image(width, height):
    """Pixel (x, y) holds (x, y, 0): a crop's position can be read off its corner."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, :, 0] = np.arange(width)[None, :]
    a[:, :, 1] = np.arange(height)[:, None]
    return Image.fromarray(a)


@pytest.mark.parametrize("crop, left, top, side", [("center140", 19, 39, 140), ("d2c", 25, 57, 128)])
def test_aligned_images_use_the_fixed_face_box(crop, left, top, side):
    out = np.array(celeba_crop(_coords_image(178, 218), crop))
    assert out.shape == (side, side, 3)
    assert (out[0, 0, 0], out[0, 0, 1]) == (left, top)
    assert (out[-1, -1, 0], out[-1, -1, 1]) == (left + side - 1, top + side - 1)


def test_other_sizes_use_the_centred_square():
    out = np.array(celeba_crop(_coords_image(100, 60)))
    assert out.shape == (60, 60, 3) and (out[0, 0, 0], out[0, 0, 1]) == (20, 0)


def test_unknown_crop_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="center140"):
        celeba_crop(_coords_image(10, 10), "tight")
    with pytest.raises(ValueError, match="d2c"):
        CelebADataset(tmp_path, crop="tight")


def test_dataset_finds_nested_images_and_is_unconditional(tmp_path):
    (tmp_path / "img_align_celeba" / "sub").mkdir(parents=True)
    _coords_image(178, 218).save(tmp_path / "img_align_celeba" / "000001.jpg")
    _coords_image(178, 218).save(tmp_path / "img_align_celeba" / "sub" / "000002.png")
    ds = CelebADataset(tmp_path, random_flip=False)
    assert len(ds) == 2
    item = ds[1]
    assert item["labels"] == -1 and item["inputs"].dtype == torch.uint8 and item["inputs"].shape == (3, 64, 64)
    # bicubic resize of the 140 box: the red channel (x coordinate) still runs from ~19 to ~158, left to right
    red = item["inputs"][0].float()
    assert abs(red[:, 0].mean() - 20) < 3 and abs(red[:, -1].mean() - 157) < 3


def test_flip_and_size(tmp_path):
    _coords_image(178, 218).save(tmp_path / "a.png")
    ds = CelebADataset(tmp_path, image_size=32, random_flip=True)
    reds = [ds[0]["inputs"][0, 0, 0].item() for _ in range(30)]
    assert min(reds) < 40 and max(reds) > 130  # both orientations occur
    assert ds[0]["inputs"].shape == (3, 32, 32)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="img_align_celeba"):
        CelebADataset(tmp_path / "celeba")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        CelebADataset(tmp_path)
