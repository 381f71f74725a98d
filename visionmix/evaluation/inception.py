"""FID's Inception-v3 feature extractor, read from a local weights file (nothing is downloaded at run time).

The network is torch-fidelity's ``FeatureExtractorInceptionV3``: the TensorFlow graph of 2015-12-05 that FID, IS
and ADM's evaluator use, ported so that its outputs match TF (including TF1's bilinear resize to 299x299 and the
``(x - 128) / 128`` input scaling). Two outputs per image:

* ``pool``   (N, 2048) float32: the pool3 activations; FID and precision/recall are computed on these;
* ``logits`` (N, 1008) float32: ``pool3 @ W`` of the softmax layer *without* its bias, as the original IS code and
  ADM's evaluator compute them (torch-fidelity's ``logits_unbiased``).

Input contract (:func:`to_uint8_nchw`): uint8 ``(N, H, W, C)`` (the layout of ADM's ``.npz`` batches and
``visionmix sample``'s ``arr_0``) or float ``(N, C, H, W)`` in [-1, 1], ``C`` 1 or 3 (grey is repeated to RGB),
any ``H, W``. The network reads 8-bit images, so floats are quantised as ``visionmix sample`` stores them,
``round((x + 1) * 127.5)`` clamped to [0, 255]: a float batch and its uint8 copy give identical features.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's name) or
``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity's): the same weights, published under two names;
``6726825d`` is the start of the file's sha256. Looked for, in order, at ``$VISIONMIX_INCEPTION_WEIGHTS`` (the
file, or a folder holding it), ``~/.cache/visionmix/`` and ``torch.hub.get_dir()/checkpoints/`` (where
torch-fidelity caches its own download). The file is read with ``torch.load(weights_only=True)``: loading never
runs code from it. A file whose sha256 does not start with ``6726825d`` loads with a warning: its scores are not
comparable with published ones.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_NAMES = (WEIGHTS_NAME, "weights-inception-2015-12-05-6726825d.pth")
# torch-fidelity's release of the weights (torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3)
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
SHA256_PREFIX = "6726825d"
ENV = "VISIONMIX_INCEPTION_WEIGHTS"
POOL_DIM, LOGITS_DIM = 2048, 1008

Images = Union[np.ndarray, torch.Tensor]


def search_dirs() -> list[Path]:
    """The folders looked in after ``$VISIONMIX_INCEPTION_WEIGHTS``, in order."""
    return [Path("~/.cache/visionmix").expanduser(), Path(torch.hub.get_dir()) / "checkpoints"]


def find_weights(path: str | os.PathLike | None = None) -> Path:
    """The Inception weights file: ``path`` if given, else the search order of the module docstring.
    A missing file raises :class:`FileNotFoundError` saying where it comes from and where to put it."""
    if path is None and os.environ.get(ENV):
        path, origin = os.environ[ENV], f"${ENV}"
    else:
        origin = "the given path"
    if path is not None:
        given = Path(path).expanduser()
        found = [given / n for n in WEIGHTS_NAMES if (given / n).is_file()] if given.is_dir() else []
        if given.is_file() or found:
            return given if given.is_file() else found[0]
        # a path someone set explicitly is never silently replaced by another copy
        raise FileNotFoundError(f"Inception weights not found at {given} ({origin}): download {WEIGHTS_URL} "
                                f"there, or point {ENV} at the file")
    for folder in search_dirs():
        for name in WEIGHTS_NAMES:
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(d) for d in search_dirs())
    raise FileNotFoundError(
        f"Inception-v3 weights for FID/IS not found: no {WEIGHTS_NAME} (or {WEIGHTS_NAMES[1]}) in {looked}.\n"
        f"Download {WEIGHTS_URL}\n"
        f"and save it as {search_dirs()[0] / WEIGHTS_NAME}, or set {ENV}=/path/to/the/file.")


def to_uint8_nchw(images: Images) -> torch.Tensor:
    """One batch in the network's input format: uint8 ``(N, 3, H, W)`` (see the module docstring)."""
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (4 dimensions), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if x.shape[-1] not in (1, 3):
            raise ValueError(f"uint8 images must be (N, H, W, 1 or 3) as in ADM's .npz, got shape {tuple(x.shape)} "
                             "(pass (N, C, H, W) images as floats in [-1, 1])")
        x = x.permute(0, 3, 1, 2)
    elif x.is_floating_point():
        if x.shape[1] not in (1, 3):
            raise ValueError(f"float images must be (N, 1 or 3, H, W) in [-1, 1], got shape {tuple(x.shape)} "
                             "(pass (N, H, W, C) images as uint8)")
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    else:
        raise ValueError(f"images must be uint8 (N, H, W, C) or float (N, C, H, W) in [-1, 1], got {x.dtype}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _read_state_dict(path: Path) -> dict:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        warnings.warn(f"{path}: sha256 {digest[:16]}... does not start with {SHA256_PREFIX}: these are not the FID "
                      "Inception weights, and scores computed with them are not comparable with published ones",
                      stacklevel=3)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(f"{path} is not a readable PyTorch state dict ({type(err).__name__}: {err}); "
                         f"download {WEIGHTS_URL} again") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not the Inception state dict; "
                         f"download {WEIGHTS_URL} again")
    return state


class InceptionFeatures:
    """Inception-v3 pool3 features and unbiased logits of image batches, on CPU or CUDA.

    ``InceptionFeatures(device="cuda")(images)`` -> ``{"pool": (N, 2048), "logits": (N, 1008)}`` (float32 numpy).
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise ImportError("FID/IS need torch-fidelity: pip install torch-fidelity "
                              "(or pip install 'visionmix[metrics]')") from err
        self.weights_path = find_weights(weights)
        state = _read_state_dict(self.weights_path)
        # torch-fidelity reads the weights with a full unpickler; handing it the tensors re-serialised here
        # keeps the file's own pickle out of it
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                              feature_extractor_weights_path=buffer)
        except RuntimeError as err:  # load_state_dict's missing / unexpected keys
            raise ValueError(f"{self.weights_path} does not fit torch-fidelity's Inception-v3 "
                             f"({str(err).splitlines()[0]}); download {WEIGHTS_URL} again") from err
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: Images, batch_size: int = 50, progress: bool = True,
                 desc: str = "Inception features") -> dict[str, np.ndarray]:
        """Features of every image of ``images`` (uint8 NHWC or float NCHW, numpy or torch), ``batch_size`` at a
        time (each batch is converted and moved to the device on its own: a 50k-image array stays where it is)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        from tqdm.auto import tqdm

        n = len(images)
        pool, logits = np.empty((n, POOL_DIM), np.float32), np.empty((n, LOGITS_DIM), np.float32)
        with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, n, batch_size):
                batch = to_uint8_nchw(images[start:start + batch_size]).to(self.device)
                p, lg = self.net(batch)
                pool[start:start + len(batch)] = p.cpu().numpy()
                logits[start:start + len(batch)] = lg.cpu().numpy()
                bar.update(len(batch))
        return {"pool": pool, "logits": logits}
