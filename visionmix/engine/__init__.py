"""Training engine: the mmengine Runner with atomic checkpoints, a trusted checkpoint loader, and hooks."""
from .checkpoint import CheckpointError, CheckpointMismatchError, is_trusted, trust_path
from .hooks import NaNGuardHook, NonFiniteLossError, RNGStateHook, SampleGridHook
from .runner import VisionMixRunner

__all__ = ["CheckpointError", "CheckpointMismatchError", "is_trusted", "trust_path", "NaNGuardHook",
           "NonFiniteLossError", "RNGStateHook", "SampleGridHook", "VisionMixRunner"]
