import torch

from visionmix.layers.conditioning import AdaLNModulation, modulate


def test_modulate_formula():
    x = torch.randn(2, 3, 4)
    shift, scale = torch.randn(2, 4), torch.randn(2, 4)
    out = modulate(x, shift, scale)
    for b in range(2):
        torch.testing.assert_close(out[b], x[b] * (1 + scale[b]) + shift[b])


def test_adaln_modulation_starts_at_zero_and_splits_chunks():
    mod = AdaLNModulation(8, 6)
    chunks = mod(torch.randn(2, 8))
    assert len(chunks) == 6 and all(c.shape == (2, 8) and c.abs().sum() == 0 for c in chunks)
