"""The stock mmengine ``Runner`` with atomic checkpoint writes."""
from __future__ import annotations

import os
import os.path as osp

from mmengine.dist import master_only
from mmengine.runner import Runner

from . import checkpoint as _checkpoint  # noqa: F401  registers the trusted local loader


class VisionMixRunner(Runner):
    """Writes each checkpoint to ``<name>.partial`` and renames it into place, so a crash or a full
    disk mid-write never replaces a good checkpoint with a truncated one."""

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        partial = f"{filename}.partial"
        super().save_checkpoint(out_dir, partial, *args, **kwargs)
        os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))
