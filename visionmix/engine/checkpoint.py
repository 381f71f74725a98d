"""mmengine's checkpoint loading, wired to visionmix's data-only reader (:mod:`visionmix.checkpoint_io`).

Schemes registered here: local paths (read as data), ``zoo:NAME`` (a model-zoo row's verified, converted weights,
:mod:`visionmix.hub`), ``http(s)://`` (downloaded into torch.hub's cache, then read as data); mmengine's other
remote schemes (pavi, s3, torchvision, open-mmlab, ...) are refused. :func:`check_config_checkpoint` checks before the
Runner starts that ``load_from`` fits the model a config builds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint_io import CheckpointError, as_training_checkpoint, check_fits, read_checkpoint, shapes_of

ZOO_PREFIX = "zoo:"


def load_from_zoo(filename: str, map_location: Any = None) -> dict:
    """mmengine loader for ``zoo:NAME``: the row's verified, converted weights as a training checkpoint's fields."""
    from ..hub import state_dict

    return {"state_dict": state_dict(filename[len(ZOO_PREFIX):], map_location=map_location),
            "meta": {"zoo": filename[len(ZOO_PREFIX):]}}


def check_config_checkpoint(cfg: Any) -> None:
    """Before the Runner exists: does ``cfg.load_from`` fit the model ``cfg`` builds? The checkpoint is
    memory-mapped and the model built on the meta device, so this costs neither memory nor initialisation
    (a ``zoo:`` name is downloaded and verified here, once, instead of after the Runner has started)."""
    if not cfg.get("load_from"):
        return
    from mmengine.registry import MODELS

    source = str(cfg.load_from)
    if source.startswith(ZOO_PREFIX):
        if cfg.get("resume"):
            raise CheckpointError(f"resume=True with load_from={cfg.load_from}: zoo weights start a new run and "
                                  "cannot be resumed; set resume=False (or resume from a checkpoint of your run)")
        checkpoint = load_from_zoo(source)
    else:
        local = "://" not in source
        checkpoint = (read_checkpoint(source, map_location="cpu", mmap=not source.endswith(".safetensors"))
                      if local else CheckpointLoader.load_checkpoint(source, map_location="cpu"))
        if not cfg.get("resume"):
            checkpoint = as_training_checkpoint(checkpoint, source)
    try:
        with torch.device("meta"):
            shapes = shapes_of(MODELS.build(cfg.model).state_dict())
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: the Runner checks the real one
        return
    check_fits(shapes, checkpoint, source, strict=bool(cfg.get("resume")))


def load_from_url(filename: str, map_location: Any = None) -> dict:
    """mmengine loader for ``http(s)://`` ``load_from``: downloaded once into torch.hub's checkpoint cache, then read
    as data like any local file (mmengine's own loader leaves that to ``torch.load``'s default)."""
    import torch.hub
    from urllib.parse import unquote, urlparse

    name = Path(unquote(urlparse(filename).path)).name or "checkpoint.pth"
    target = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(filename, str(target), progress=False)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"load_from={filename}: could not download it ({err})") from None
    return read_checkpoint(str(target), map_location=map_location)


def refuse_remote(filename: str, map_location: Any = None) -> dict:
    """mmengine's other remote schemes (pavi, s3, torchvision, open-mmlab, ...) read with loaders visionmix does not
    control: refused."""
    raise CheckpointError(f"load_from={filename}: visionmix reads checkpoints from local files, http(s) URLs and "
                          "zoo:NAME; download the file and pass its local path")


CheckpointLoader.register_scheme(prefixes="", loader=read_checkpoint, force=True)
CheckpointLoader.register_scheme(prefixes=ZOO_PREFIX, loader=load_from_zoo, force=True)
CheckpointLoader.register_scheme(prefixes=("http://", "https://"), loader=load_from_url, force=True)
CheckpointLoader.register_scheme(prefixes=("pavi://", "modelzoo://", "torchvision://", "open-mmlab://",
                                           "openmmlab://", "mmcls://", r"(\S+\:)?s3://", r"(\S+\:)?petrel://"),
                                 loader=refuse_remote, force=True)
