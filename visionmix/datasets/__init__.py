"""Datasets: plain ``torch.utils.data.Dataset`` classes (configs name them by class, ``type=ImageFolderDataset``).

Every item is ``dict(inputs=Tensor, labels=int)``:

* image data sets give ``uint8 (C, H, W)`` (the data preprocessor maps it to [-1, 1]);
* :class:`LatentDataset` gives ``float32 (4, h, w)`` *unscaled* VAE latents (the preprocessor multiplies
  by the VAE scaling factor, 0.18215);
* ``labels`` is the class id, or ``-1`` meaning "no label" for unconditional data (an unconditional
  model ignores it).

A missing data folder raises ``FileNotFoundError`` naming the path and the expected layout; relative
roots resolve under ``$VISIONMIX_DATA`` when it is set (:mod:`visionmix.datasets.paths`).
"""
from .celeba import CelebADataset, celeba_crop
from .cifar import CIFAR10Dataset
from .digits import DigitsDataset, digits_split
from .image_folder import ImageFolderDataset, adm_center_crop
from .images import CorruptImageWarning
from .latents import LatentDataset
from .paths import DATA_ENV, missing_data_error, resolve_root
from .vae import SD_VAE_SCALE, load_vae

__all__ = [
    "CIFAR10Dataset", "CelebADataset", "CorruptImageWarning", "DATA_ENV", "DigitsDataset", "ImageFolderDataset",
    "LatentDataset", "SD_VAE_SCALE", "adm_center_crop", "celeba_crop", "digits_split", "load_vae",
    "missing_data_error", "resolve_root",
]
