"""visionmix.engine.hooks.rng_state: restoring a captured state replays every generator's draws exactly."""
import random

import numpy as np
import torch

from visionmix.engine.hooks.rng_state import capture_rng_state, restore_rng_state


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_restore_replays_torch_numpy_and_python_draws():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state = capture_rng_state()
    first = draws()
    assert draws() != first  # the generators moved on
    restore_rng_state(state)
    assert draws() == first
