import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import GRIDS, assert_matches_oracle, assert_trains, check_contract, largest_saved_tensor
from visionmix.mixers.linear_attention import LinearAttention

DIM, HEADS = 32, 4


def dense_features(x: torch.Tensor, mixer: LinearAttention) -> torch.Tensor:
    """φ over a token's C channels, straight from the papers' formulas."""
    if mixer.feature_map == "elu1":
        return torch.where(x > 0, x + 1, torch.exp(x))
    if mixer.feature_map == "relu":
        return x.clamp(min=0)
    x = (x.clamp(min=0) + 1e-6) / torch.log1p(torch.exp(mixer.feature_scale))
    powered = x ** mixer.focusing_factor
    return powered / powered.norm(dim=-1, keepdim=True) * x.norm(dim=-1, keepdim=True)


def dense_linear_attention(mixer: LinearAttention, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Per head: A = φ(Q) φ(K)^T (N×N), rows normalised by their sums (mean form, + eps), then A V."""
    dim, d = x.shape[-1], mixer.head_dim
    q, k, v = mixer.qkv(x).split(dim, dim=-1)
    fq, fk = dense_features(q, mixer), dense_features(k, mixer)
    n = x.shape[1]
    heads = []
    for h in range(mixer.num_heads):
        sl = slice(h * d, (h + 1) * d)
        scores = fq[..., sl] @ fk[..., sl].transpose(-1, -2)
        heads.append((scores @ v[..., sl]) / n / (scores.sum(-1, keepdim=True) / n + mixer.eps))
    out = torch.cat(heads, dim=-1)
    if mixer.rank_conv is not None:
        extra, conv = n - hw[0] * hw[1], mixer.rank_conv.conv
        grid = v[:, extra:].transpose(1, 2).reshape(x.shape[0], dim, *hw)
        rank = F.conv2d(grid, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=dim)
        out = out + F.pad(rank.flatten(2).transpose(1, 2), (0, 0, extra, 0))
    return mixer.proj(out)


def assert_same_outputs_and_gradients(mixer, reference, x, hw):
    out, expected = mixer(x, hw), reference(mixer, x, hw)
    assert_matches_oracle(mixer, x, out, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("rank_enhance", [0, 3])
@pytest.mark.parametrize("feature_map", ["elu1", "relu", "focused"])
@pytest.mark.parametrize("hw", GRIDS)
def test_matches_dense_oracle_outputs_and_gradients(hw, feature_map, rank_enhance):
    mixer = randomize_(LinearAttention(DIM, HEADS, feature_map=feature_map, rank_enhance=rank_enhance).double(), 0.1)
    x = torch.randn(2, hw[0] * hw[1], DIM, dtype=torch.float64, requires_grad=True)
    assert_same_outputs_and_gradients(mixer, dense_linear_attention, x, hw)


@pytest.mark.parametrize("feature_map", ["elu1", "focused"])
def test_extra_tokens_join_the_global_state(feature_map):
    mixer = randomize_(LinearAttention(DIM, HEADS, feature_map=feature_map, rank_enhance=5).double(), 0.1)
    x = torch.randn(2, 3 + 20, DIM, dtype=torch.float64, requires_grad=True)
    assert_same_outputs_and_gradients(mixer, dense_linear_attention, x, (4, 5))


def test_permuting_extra_tokens_permutes_their_outputs_only():
    mixer = randomize_(LinearAttention(DIM, HEADS, rank_enhance=3), 0.1).eval()
    x = torch.randn(1, 3 + 12, DIM)
    perm = torch.cat([torch.tensor([2, 0, 1]), torch.arange(3, 15)])
    torch.testing.assert_close(mixer(x[:, perm], (3, 4)), mixer(x, (3, 4))[:, perm], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [dict(), dict(feature_map="relu", rank_enhance=3),
                                     dict(feature_map="focused", rank_enhance=5, qkv_bias=False)])
def test_contract(options):
    check_contract(LinearAttention(DIM, HEADS, **options), DIM)


@pytest.mark.parametrize("feature_map", ["elu1", "focused"])
def test_bf16_autocast_stays_close_to_float32(feature_map):
    mixer = randomize_(LinearAttention(DIM, HEADS, feature_map=feature_map, rank_enhance=3), 0.1)
    x = torch.randn(2, 35, DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x, (5, 7))
    reference = mixer(x, (5, 7))
    assert (low.float() - reference).norm() / reference.norm() < 3e-2


def test_focused_features_survive_tiny_inputs_in_float32():
    """x^3 of 1e-6-sized features underflows float32; the map must still return finite, non-zero features."""
    mixer = LinearAttention(8, 1, feature_map="focused")
    with torch.no_grad():
        mixer.feature_scale.fill_(20.0)  # softplus(20) = 20: every feature is ~5e-8 before the power
    feats = mixer.features(torch.full((1, 2, 8), -1.0))
    assert torch.isfinite(feats).all() and (feats > 0).all()


def test_never_builds_an_n_by_n_tensor():
    side = 96
    assert largest_saved_tensor(LinearAttention(16, 2, feature_map="focused", rank_enhance=3), side, 16) < (side * side) ** 2 / 64


def test_init_follows_flatten():
    mixer = LinearAttention(64, 4, feature_map="focused", rank_enhance=3)
    assert mixer.qkv.bias.abs().sum() == 0 and mixer.proj.bias.abs().sum() == 0
    assert 0.015 < mixer.qkv.weight.std() < 0.025 and mixer.feature_scale.abs().sum() == 0


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        LinearAttention(30, 4)
    with pytest.raises(ValueError, match="known: elu1, relu, focused"):
        LinearAttention(32, 4, feature_map="softmax")
    with pytest.raises(ValueError, match="odd positive"):
        LinearAttention(32, 4, rank_enhance=4)
    with pytest.raises(ValueError, match="at least H\\*W"):
        LinearAttention(32, 4)(torch.randn(1, 11, 32), (3, 4))



def test_trains_focused():
    assert_trains(dict(type="linear_attention", feature_map="focused", rank_enhance=3))
