"""CelebA faces (the 178x218 "aligned & cropped" release, ``img_align_celeba``), unconditional.

``root`` is any folder holding the face images (jpg/png, any depth). Each image is cropped to a
square, resized to ``image_size`` with bicubic filtering and optionally flipped horizontally:

* ``crop="center140"`` (default): the central 140x140 window of a 178x218 image (left 19, top 39, as
  torchvision ``CenterCrop(140)`` rounds it), the usual CelebA-64 preprocessing of score-based and
  GAN work;
* ``crop="d2c"``: the 128x128 window centred at (x=89, y=121) of a 178x218 image (left 25, top 57),
  used by D2C, DDIM and U-ViT's CelebA-64 (tighter on the face, lower on the image).

Images of any other size fall back to their largest centred square. Items are
``dict(inputs=uint8 (3, image_size, image_size), labels=-1)``; -1 means "no label".
"""
from __future__ import annotations

import os

from PIL import Image
from torch.utils.data import Dataset

from .images import AugmentationRNG, ReadableImages, list_images, random_hflip, to_uint8_tensor
from .paths import missing_data_error, resolve_root

ALIGNED_SIZE = (178, 218)  # (width, height) of every img_align_celeba image
CROP_BOXES = {  # (left, top, right, bottom) on a 178x218 aligned image
    "center140": (19, 39, 159, 179),
    "d2c": (25, 57, 153, 185),
}
EXPECTED_LAYOUT = "CelebA aligned face images (img_align_celeba/*.jpg, any depth below <root>)"


def celeba_crop(image: Image.Image, crop: str = "center140") -> Image.Image:
    """The square face crop described in the module docstring."""
    if crop not in CROP_BOXES:
        raise ValueError(f"unknown CelebA crop {crop!r}; choose one of {sorted(CROP_BOXES)}")
    if image.size == ALIGNED_SIZE:
        return image.crop(CROP_BOXES[crop])
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


class CelebADataset(Dataset):
    """Unconditional face images: crop (see module docstring), bicubic resize, random flip."""

    num_classes = 0

    def __init__(self, root: str | os.PathLike, image_size: int = 64, random_flip: bool = True,
                 crop: str = "center140"):
        if crop not in CROP_BOXES:
            raise ValueError(f"unknown CelebA crop {crop!r}; choose one of {sorted(CROP_BOXES)}")
        self.root = resolve_root(root)
        self.image_size = int(image_size)
        self.random_flip = random_flip
        self._rng = AugmentationRNG()
        self.crop = crop
        if not self.root.is_dir():
            raise missing_data_error(self.root, EXPECTED_LAYOUT)
        paths = list_images(self.root)
        if not paths:
            raise missing_data_error(self.root, EXPECTED_LAYOUT + "; the folder exists but holds no images")
        self._images = ReadableImages(paths, self.root)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict:
        _, image = self._images.load(index)
        square = celeba_crop(image, self.crop)
        image = square.resize((self.image_size, self.image_size), resample=Image.BICUBIC)
        return dict(inputs=random_hflip(to_uint8_tensor(image), self.random_flip, self._rng), labels=-1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, image_size={self.image_size}, "
                f"crop={self.crop!r})")
