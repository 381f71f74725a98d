"""Training hooks."""
from .nan_guard import NaNGuardHook, NonFiniteLossError
from .rng_state import RNGStateHook
from .sample_grid import SampleGridHook

__all__ = ["NaNGuardHook", "NonFiniteLossError", "RNGStateHook", "SampleGridHook"]
