import numpy as np
import pytest
import torch
from PIL import Image

from visionmix.visualization import grid_image, rows_by_class, save_grid


def test_rows_follow_classes_and_blank_cells_fill_short_rows():
    images = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    ordered, width = rows_by_class(images, [2, 0, 2, 0, 2])
    assert width == 3
    # row 0: the two class-0 images then one white blank; row 1: the three class-2 images
    assert ordered[:, 0, 0, 0].tolist() == [1.0, 3.0, 1.0, 0.0, 2.0, 4.0]


def test_grid_is_upscaled_by_a_whole_factor_with_sharp_pixels():
    images = torch.full((30, 1, 8, 8), -1.0)
    images[:, :, 0, 0] = 1.0  # one white pixel in each black digit
    grid = grid_image(images, labels=torch.arange(10).repeat_interleave(3))
    rows, cols = 10 * 9 + 1, 3 * 9 + 1  # 8 px + 1 px frame per cell, plus the closing frame
    factor = -(-256 // cols)  # the shorter side (columns) must reach 256
    assert grid.shape == (1, rows * factor, cols * factor) and grid.dtype == torch.uint8
    cell = grid[0, factor:9 * factor, factor:9 * factor]  # first image, frame excluded
    assert (cell[:factor, :factor] == 255).all() and (cell[factor:, :] == 0).all()


def test_a_large_grid_is_not_scaled_and_rgb_stays_rgb():
    grid = grid_image(torch.zeros(4, 3, 300, 300))
    assert grid.shape == (3, 2 * 301 + 1, 2 * 301 + 1)


def test_save_grid_writes_a_png_and_no_partial_file(tmp_path):
    path = save_grid(torch.rand(16, 1, 8, 8) * 2 - 1, str(tmp_path / "g.png"))
    assert np.asarray(Image.open(path)).shape == (37 * 7, 37 * 7)  # 4 cells of 9 px + 1, x7 reaches 256
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_labels_must_match_images():
    with pytest.raises(ValueError, match="one label per image"):
        grid_image(torch.zeros(3, 1, 8, 8), labels=[0, 1])
