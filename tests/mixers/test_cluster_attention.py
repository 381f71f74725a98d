import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import (GRIDS, OnGrid, assert_matches_oracle,
                                 assert_trains, check_contract, largest_saved_tensor)
from visionmix.flops import count_macs
from visionmix.layers.rope import RoPE2d
from visionmix.mixers.cluster_attention import ClusterAttention

DIM, HEADS = 16, 2  # head width 8: RoPE rotates two pairs per axis


def dense_cluster_attention(mixer: ClusterAttention, x: torch.Tensor, hw: tuple[int, int],
                            clusters: int) -> torch.Tensor:
    """Per (sample, head): rank the RoPE'd keys by cosine similarity to their mean, split the ranking into
    ``clusters`` near-equal runs (torch.tensor_split), and run dense N×N softmax attention under the
    same-cluster mask; plus LePE as an explicit depthwise conv2d of V; projected."""
    b, n, dim = x.shape
    d = mixer.head_dim
    q, k, v = mixer.qkv(x).split(dim, dim=-1)
    rope = RoPE2d(d)
    heads = []
    for h in range(mixer.num_heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh, vh = rope(q[..., sl], hw), rope(k[..., sl], hw), v[..., sl]
        outs = []
        for i in range(b):
            with torch.no_grad():
                score = F.cosine_similarity(kh[i], kh[i].mean(0, keepdim=True), dim=-1)
                label = torch.empty(n, dtype=torch.long)
                for c, members in enumerate(torch.tensor_split(score.argsort(), clusters)):
                    label[members] = c
                same = label[:, None] == label[None, :]
            logits = (qh[i] @ kh[i].T / d ** 0.5).masked_fill(~same, float("-inf"))
            outs.append(torch.softmax(logits, dim=-1) @ vh[i])
        heads.append(torch.stack(outs))
    conv = mixer.lepe.conv
    lepe = F.conv2d(v.transpose(1, 2).reshape(b, dim, *hw), conv.weight, conv.bias, padding=conv.padding, groups=dim)
    return mixer.proj(torch.cat(heads, dim=-1) + lepe.flatten(2).transpose(1, 2))


def check_against_oracle(mixer: ClusterAttention, hw: tuple[int, int], clusters: int) -> None:
    x = torch.randn(2, hw[0] * hw[1], DIM, dtype=torch.float64, requires_grad=True)
    out, expected = mixer(x, hw), dense_cluster_attention(mixer, x, hw, clusters)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hw", GRIDS)
@pytest.mark.parametrize("num_clusters", [1, 3, 4])
def test_matches_dense_oracle_with_fixed_cluster_count(hw, num_clusters):
    mixer = randomize_(ClusterAttention(DIM, HEADS, num_clusters=num_clusters).double(), 0.3)
    check_against_oracle(mixer, hw, num_clusters)  # 16 / 3, 35 / 3, 35 / 4, 256 / 3: padded clusters


@pytest.mark.parametrize("hw, cluster_size, clusters", [((4, 4), 4, 4), ((5, 7), 8, 5), ((16, 16), 48, 6),
                                                        ((16, 16), 64, 4)])
def test_matches_dense_oracle_with_fixed_cluster_size(hw, cluster_size, clusters):
    mixer = randomize_(ClusterAttention(DIM, HEADS, cluster_size=cluster_size).double(), 0.3)
    assert mixer.clusters_for(hw[0] * hw[1]) == clusters
    check_against_oracle(mixer, hw, clusters)


def test_one_cluster_is_full_attention_with_rope_and_lepe():
    mixer = randomize_(ClusterAttention(DIM, HEADS, num_clusters=1).double(), 0.3)
    x = torch.randn(2, 35, DIM, dtype=torch.float64)
    q, k, v = mixer.qkv(x).split(DIM, dim=-1)
    rope = RoPE2d(DIM // HEADS)
    heads = [torch.softmax(rope(q[..., s], (5, 7)) @ rope(k[..., s], (5, 7)).transpose(1, 2) / 8 ** 0.5, -1) @ v[..., s]
             for s in (slice(0, 8), slice(8, 16))]
    expected = mixer.proj(torch.cat(heads, dim=-1) + mixer.lepe(v, (5, 7)))
    torch.testing.assert_close(mixer(x, (5, 7)), expected, rtol=1e-10, atol=1e-12)


def test_more_clusters_than_tokens_is_clamped():
    mixer = randomize_(ClusterAttention(DIM, HEADS, num_clusters=40).double(), 0.3)
    assert mixer.clusters_for(35) == 35 and mixer.clusters_for(1) == 1
    check_against_oracle(mixer, (5, 7), 35)  # one token a cluster: each attends to itself only


class NoRoPE(torch.nn.Module):
    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return x


def test_clusters_are_semantic_not_spatial():
    """Shuffling the tokens (RoPE and LePE off: no positions) only shuffles the output: the clusters follow
    the keys, not the grid."""
    mixer = randomize_(ClusterAttention(DIM, HEADS, num_clusters=4, lepe_kernel_size=0).double(), 0.3)
    mixer.rope = NoRoPE()
    x, perm = torch.randn(1, 36, DIM, dtype=torch.float64), torch.randperm(36)
    torch.testing.assert_close(mixer(x[:, perm], (6, 6)), mixer(x, (6, 6))[:, perm])


def test_cost_follows_cluster_size():
    mixer = ClusterAttention(DIM, HEADS)  # cluster_size 64 by default
    for side in (16, 32):
        n = side * side
        macs = count_macs(OnGrid(mixer, (side, side)), (torch.randn(1, n, DIM),))
        assert macs == n * DIM * 4 * DIM + 2 * n * 64 * DIM + n * DIM * 25  # projections, attention, LePE


def test_never_builds_an_n_by_n_tensor():
    side = 96
    assert largest_saved_tensor(ClusterAttention(DIM, HEADS), side, DIM) < (side * side) ** 2 / 64


def test_contract():
    check_contract(ClusterAttention(DIM, HEADS, num_clusters=3), DIM)
    check_contract(ClusterAttention(DIM, HEADS, cluster_size=4, lepe_kernel_size=0, qkv_bias=False), DIM)


def test_bf16_autocast_stays_close_to_float32():
    """One cluster is continuous in the inputs: bf16 tracks fp32 closely. With several, a bf16 key may swap
    clusters with its neighbour in the ranking (a hard assignment), which moves those clusters' outputs; the
    typical token stays close."""
    x = torch.randn(2, 63, 32)
    for options in (dict(num_clusters=1), dict(cluster_size=16)):
        mixer = randomize_(ClusterAttention(32, 4, **options), 0.1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = mixer(x, (7, 9)).float()
        reference = mixer(x, (7, 9))
        assert torch.isfinite(low).all()
        per_token = (low - reference).norm(dim=-1) / reference.norm(dim=-1)
        assert per_token.median() < 2e-2
        if "num_clusters" in options:
            assert (low - reference).norm() / reference.norm() < 2e-2


def test_init_follows_the_official_code():
    mixer = ClusterAttention(64, 4)
    assert mixer.qkv.bias.abs().sum() == 0 and mixer.proj.bias.abs().sum() == 0
    assert mixer.lepe.conv.bias.abs().sum() == 0
    for weight in (mixer.qkv.weight, mixer.lepe.conv.weight):
        assert 0.015 < weight.std() < 0.025


def test_extra_tokens_are_rejected_with_a_pointer_to_adaln():
    with pytest.raises(ValueError, match="cluster_attention needs exactly H\\*W.*'adaln_zero' or 'adaln'"):
        ClusterAttention(DIM, HEADS)(torch.randn(1, 2 + 12, DIM), (3, 4))


@pytest.mark.parametrize("options, message", [(dict(num_clusters=4, cluster_size=16), "exactly one of num_clusters"),
                                              (dict(num_clusters=0), "num_clusters must be a positive integer"),
                                              (dict(cluster_size=2.5), "cluster_size must be a positive integer"),
                                              (dict(lepe_kernel_size=4), "odd positive")])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        ClusterAttention(DIM, HEADS, **options)


def test_trains():
    assert_trains(dict(type="cluster_attention", cluster_size=4))
