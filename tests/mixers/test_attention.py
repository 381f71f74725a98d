import math

import pytest
import torch

from visionmix.mixers.attention import Attention


def dense_attention(mixer: Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) V per head, written out with explicit loops over heads."""
    qkv = mixer.qkv(x)
    dim = x.shape[-1]
    q, k, v = qkv[..., :dim], qkv[..., dim:2 * dim], qkv[..., 2 * dim:]
    d = mixer.head_dim
    heads = []
    for h in range(mixer.num_heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh = mixer.q_norm(q[..., sl]), mixer.k_norm(k[..., sl])
        weights = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)
        heads.append(weights @ v[..., sl])
    return mixer.proj(torch.cat(heads, dim=-1))


@pytest.mark.parametrize("qk_norm", [False, True])
@pytest.mark.parametrize("hw", [(4, 4), (5, 7)])
def test_matches_dense_softmax_attention(qk_norm, hw):
    mixer = Attention(48, 6, qk_norm=qk_norm).double()
    x = torch.randn(2, hw[0] * hw[1], 48, dtype=torch.float64)
    torch.testing.assert_close(mixer(x, hw), dense_attention(mixer, x), rtol=1e-10, atol=1e-10)


def test_accepts_extra_tokens_and_is_permutation_equivariant():
    mixer = Attention(32, 4).eval()
    x = torch.randn(1, 2 + 12, 32)
    perm = torch.randperm(14)
    torch.testing.assert_close(mixer(x[:, perm], (3, 4)), mixer(x, (3, 4))[:, perm], rtol=1e-5, atol=1e-5)


def test_width_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        Attention(30, 4)
