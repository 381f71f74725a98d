"""ImageNet-style image folder ``<root>/<class>/<image>`` with the ADM / DiT center crop.

Recipe (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", reused unchanged by DiT, SiT and most
latent-diffusion ImageNet pipelines):

1. while the short side is at least ``2 * image_size``, halve both sides (integer division) with a box
   filter, which is an exact 2x2 average and cheap;
2. resize with bicubic so the short side is ``image_size`` (long side ``round(long * scale)``);
3. crop the central ``image_size x image_size`` window (offsets rounded down);
4. optionally flip horizontally with probability 0.5.

Items are ``dict(inputs=uint8 (3, image_size, image_size), labels=int)``; class ids are the sorted
class-folder names' positions. With ``class_cond=False`` every item has ``labels=-1`` (-1 means "no
label": an unconditional model ignores it) and images may also sit directly under ``root``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .images import AugmentationRNG, ReadableImages, list_images, random_hflip, to_uint8_tensor
from .paths import missing_data_error, resolve_root

EXPECTED_LAYOUT = "ImageNet-style train images as <root>/<class_id>/<image>.JPEG (one folder per class)"


def adm_center_crop(image: Image.Image, image_size: int) -> Image.Image:
    """Steps 1-3 of the module docstring; returns an ``image_size x image_size`` PIL image."""
    while min(image.size) >= 2 * image_size:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.BOX)
    scale = image_size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), resample=Image.BICUBIC)
    left = (image.width - image_size) // 2
    top = (image.height - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


class ImageFolderDataset(Dataset):
    """``<root>/<class>/<image>`` (any depth below the class folder), ADM center crop, random flip."""

    def __init__(self, root: str | os.PathLike, image_size: int, random_flip: bool = True,
                 class_cond: bool = True):
        self.root = resolve_root(root)
        self.image_size = int(image_size)
        self.random_flip = random_flip
        self._rng = AugmentationRNG()
        self.class_cond = class_cond
        if not self.root.is_dir():
            raise missing_data_error(self.root, EXPECTED_LAYOUT)
        if class_cond:
            class_dirs = sorted(d for d in self.root.iterdir() if d.is_dir())
            per_class = [(d.name, list_images(d)) for d in class_dirs]
            per_class = [(name, files) for name, files in per_class if files]  # ignore empty/stray folders
            self.classes = [name for name, _ in per_class]
            paths = [path for _, files in per_class for path in files]
            labels = [label for label, (_, files) in enumerate(per_class) for _ in files]
        else:
            self.classes = []
            paths = list_images(self.root)
            labels = [-1] * len(paths)
        if not paths:
            raise missing_data_error(self.root, EXPECTED_LAYOUT + "; the folder exists but holds no such images")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self._images = ReadableImages(paths, self.root)
        self.targets = np.array(labels, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def samples(self) -> list[tuple[Path, int]]:
        """``(path, label)`` pairs in dataset order (built on demand; the dataset stores numpy arrays)."""
        return [(self._images.path(i), int(t)) for i, t in enumerate(self.targets)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict:
        # an unreadable file yields the next readable sample, with that sample's own label
        j, image = self._images.load(index)
        x = to_uint8_tensor(adm_center_crop(image, self.image_size))
        return dict(inputs=random_hflip(x, self.random_flip, self._rng), labels=int(self.targets[j]))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, classes={self.num_classes}, "
                f"image_size={self.image_size}, random_flip={self.random_flip})")
