"""visionmix.backbones.block: the residual block against DiT's adaLN-Zero formula written out, and its variants."""
import pytest
import torch

from tests.conftest import randomize_
from visionmix.backbones.block import Block
from visionmix.contract import Grid
from visionmix.layers.conditioning import modulate

DIM, HEADS, HW = 16, 2, (3, 4)


def test_adaln_zero_is_dits_formula():
    block = randomize_(Block(DIM, HEADS, mixer="attention", ffn="mlp")).double().eval()
    x, c = torch.randn(2, 12, DIM, dtype=torch.float64), torch.randn(2, DIM, dtype=torch.float64)
    modulation = block.adaLN_modulation.linear(torch.nn.functional.silu(c))  # SiLU + Linear, six chunks (DiT)
    shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6, -1)
    h = x + gate1.unsqueeze(1) * block.mixer(modulate(block.norm1(x), shift1, scale1), HW)
    expected = h + gate2.unsqueeze(1) * block.ffn(modulate(block.norm2(h), shift2, scale2), HW)
    torch.testing.assert_close(block(x, c, HW), expected)


def test_a_fresh_adaln_zero_block_is_the_identity():
    block = Block(DIM, HEADS)
    x = torch.randn(2, 12, DIM)
    assert torch.equal(block(x, torch.randn(2, DIM), HW), x)


def test_in_context_long_skip_and_first_norm():
    block = randomize_(Block(DIM, HEADS, conditioning="in_context", skip=True, first_norm=True, norm_affine=True))
    block = block.double().eval()
    x, skip = torch.randn(2, 14, DIM, dtype=torch.float64), torch.randn(2, 14, DIM, dtype=torch.float64)
    h = block.ln0(block.skip_linear(torch.cat([x, skip], dim=-1)))
    grid = Grid(HW, extra_tokens=2)
    h = h + block.mixer(block.norm1(h), grid)
    expected = h + block.ffn(block.norm2(h), grid)
    torch.testing.assert_close(block(x, None, grid, skip), expected)
    with pytest.raises(ValueError, match="long skips"):
        Block(DIM, HEADS, skip=True, layout="grid")
