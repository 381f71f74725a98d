import pytest
import torch
import torch.nn as nn

from visionmix.backbones import IsotropicBackbone
from visionmix.flops import count_macs, count_params


def closed_form_macs(d: int, depth: int, n: int, p: int, c_in: int, freq: int = 256) -> int:
    """DiT multiply-adds written out: blocks (qkv, proj, MLP, attention products, adaLN) + embed + head."""
    per_block = 12 * d * d * n + 2 * n * n * d + 6 * d * d
    embed = n * p * p * c_in * d + freq * d + d * d
    head = 2 * d * d + n * d * p * p * 2 * c_in
    return depth * per_block + embed + head


def test_dit_macs_match_the_closed_form():
    model = IsotropicBackbone(16, 2, 4, 64, 3, 4, num_classes=10).eval()
    x, t, y = torch.randn(1, 4, 16, 16), torch.tensor([5]), torch.tensor([1])
    assert count_macs(model, (x, t, y)) == closed_form_macs(64, 3, 64, 2, 4)


def test_params_count_frozen_tables():
    model = IsotropicBackbone(16, 2, 4, 64, 3, 4, num_classes=10)
    total, trainable = count_params(model)
    assert total - trainable == 64 * 64  # the frozen sin-cos table


class UsesBaddbmm(nn.Module):
    def forward(self, a):
        return torch.baddbmm(a, a, a)


def test_uncounted_matmul_class_op_fails_loudly():
    with pytest.raises(RuntimeError, match="baddbmm"):
        count_macs(UsesBaddbmm(), (torch.randn(1, 4, 4),))
