"""visionmix.layers.lepe: a depthwise k x k convolution read on the token grid, against a loop over offsets."""
import pytest
import torch

from visionmix.layers.lepe import DepthwiseConvPE, optional_lepe


def loop_oracle(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """lepe(v)_t = sum over k x k offsets of w_c[dy, dx] v_{t + (dy, dx)} + b_c, zero outside the grid."""
    (h, w), k = hw, weight.shape[-1]
    grid = x.view(x.shape[0], h, w, -1)
    out = torch.zeros_like(grid) + bias
    for dy in range(k):
        for dx in range(k):
            for i in range(h):
                for j in range(w):
                    y, z = i + dy - k // 2, j + dx - k // 2
                    if 0 <= y < h and 0 <= z < w:
                        out[:, i, j] += weight[:, 0, dy, dx] * grid[:, y, z]
    return out.view_as(x)


@pytest.mark.parametrize("hw, k", [((4, 4), 3), ((5, 7), 5), ((2, 3), 5)])
def test_tokens_and_grids_match_the_sum_over_offsets(hw, k):
    pe = DepthwiseConvPE(6, k, init_std=0.5).double()
    pe.init_weights()
    x = torch.randn(2, hw[0] * hw[1], 6, dtype=torch.float64)
    expected = loop_oracle(x, pe.conv.weight, pe.conv.bias, hw)
    torch.testing.assert_close(pe(x, hw), expected)
    grid = x.view(2, *hw, 6).permute(0, 3, 1, 2)
    torch.testing.assert_close(pe(grid).permute(0, 2, 3, 1).reshape_as(x), expected)


def test_init_and_options_follow_the_official_codes():
    pe = DepthwiseConvPE(8, 5, init_std=0.02)
    pe.init_weights()
    assert pe.conv.bias.abs().sum() == 0 and 0.01 < pe.conv.weight.std() < 0.03
    assert optional_lepe(8, 0, "rala") is None
    with pytest.raises(ValueError, match="rala lepe_kernel_size must be 0 \\(off\\) or an odd positive integer, got 4"):
        optional_lepe(8, 4, "rala")
    with pytest.raises(ValueError, match="kernel_size must be odd and positive, got 2"):
        DepthwiseConvPE(8, 2)
    with pytest.raises(ValueError, match="needs exactly H\\*W = 12 tokens, got 11"):
        DepthwiseConvPE(8, 3)(torch.randn(1, 11, 8), (3, 4))
