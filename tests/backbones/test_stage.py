"""visionmix.backbones.stage: the drop-path schedules, stages with long skips, the pyramid's resamplers."""
import pytest
import torch
import torch.nn as nn

from visionmix.backbones.stage import Downsample, Stage, Upsample, drop_path_rates


def test_drop_path_schedules_are_the_official_linspaces():
    assert drop_path_rates(4, 0.1, last_block_gets_rate=False) == pytest.approx([0.0, 0.025, 0.05, 0.075])
    assert drop_path_rates(5, 0.1, last_block_gets_rate=True) == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    assert drop_path_rates(1, 0.1, last_block_gets_rate=True) == [0.0]


class AddSkip(nn.Module):
    """A stand-in block: x + c + 10 * skip, so the order of the skips shows in the result."""

    def forward(self, x, c, grid, skip=None):
        return x + c + (10 * skip if skip is not None else 0)


def test_stages_pass_long_skips_last_in_first_out_and_checkpoint_alike():
    x, c = torch.zeros(1, 1, requires_grad=True), torch.ones(1, 1)
    skips = []
    encoded = Stage([AddSkip(), AddSkip()])(x, c, None, skips_out=skips)
    assert [s.item() for s in skips] == [1.0, 2.0] and encoded.item() == 2.0
    out = Stage([AddSkip(), AddSkip()])(encoded, c, None, skips_in=skips)  # meets 2.0 first, then 1.0
    assert out.item() == 2 + 1 + 20 + 1 + 10 and skips == []
    again = Stage([AddSkip()])(x, c, None, checkpointing=True)
    again.backward()
    assert again.item() == 1.0 and x.grad.item() == 1.0


def test_resamplers_halve_and_double_the_grid():
    x = torch.randn(2, 8, 6, 4)
    assert Downsample(8)(x).shape == (2, 16, 3, 2) and Upsample(8)(x).shape == (2, 4, 12, 8)
