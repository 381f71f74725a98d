import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import randomize_
from tests.mixers.helpers import GRIDS, OnGrid, assert_init_covers_every_parameter, assert_trains, check_contract
from visionmix.flops import count_macs
from visionmix.mixers.retnet import ManhattanSelfAttention


def rotate(x, positions):
    """RoPE written as complex rotation: pair j = x_2j + i x_2j+1 turns by position * 10000^(-j / (d/2 - 1))."""
    half = x.shape[-1] // 2
    angles = torch.tensor([10000.0 ** (-j / max(half - 1, 1)) for j in range(half)], dtype=torch.float64)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], half, 2).contiguous())
    turned = pairs * torch.polar(torch.ones_like(angles), positions[:, None] * angles)
    return torch.view_as_real(turned).flatten(-2)


def projections(mixer, x, hw):
    """Per-head (q', k', v) lists, each (B, N, d), and the LePE term from an explicit depthwise conv2d."""
    h, w = hw
    d = mixer.head_dim
    q, k, v = mixer.q_proj(x), mixer.k_proj(x), mixer.v_proj(x)
    conv = mixer.lepe.conv
    grid = v.transpose(1, 2).reshape(x.shape[0], -1, h, w)
    lepe = F.conv2d(grid, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=x.shape[-1])
    lepe = lepe.flatten(2).transpose(1, 2)
    positions = torch.arange(h * w, dtype=torch.float64)
    heads = []
    for head in range(mixer.num_heads):
        sl = slice(head * d, (head + 1) * d)
        qh, kh = q[..., sl], k[..., sl] / math.sqrt(d)
        if mixer.use_theta_shift:
            qh, kh = rotate(qh, positions), rotate(kh, positions)
        heads.append((qh, kh, v[..., sl]))
    return heads, lepe


def gamma(mixer, head):
    return 1 - 2 ** (-mixer.initial_value - mixer.heads_range * head / mixer.num_heads)


def dense_full(mixer, x, hw):
    """softmax(q'k'^T / sqrt(d) + (|dr| + |dc|) log γ_h) v per head, then W_o(. + LePE(v))."""
    h, w = hw
    rows, cols = torch.arange(h * w) // w, torch.arange(h * w) % w
    manhattan = ((rows[:, None] - rows[None]).abs() + (cols[:, None] - cols[None]).abs()).double()
    heads, lepe = projections(mixer, x, hw)
    outs = [torch.softmax(qh @ kh.transpose(1, 2) + manhattan * math.log(gamma(mixer, i)), -1) @ vh
            for i, (qh, kh, vh) in enumerate(heads)]
    return mixer.out_proj(torch.cat(outs, -1) + lepe)


def axial_map(logits, same_line, distance, log_gamma):
    """Dense (B, N, N) map: softmax over the tokens of the same line only, zero elsewhere."""
    logits = (logits + distance * log_gamma).masked_fill(~same_line, float("-inf"))
    return torch.softmax(logits, -1)


def dense_decomposed(mixer, x, hw):
    """y = A_col (A_row v): dense block-diagonal row map (|dc| decay) then column map (|dr| decay), per head."""
    h, w = hw
    rows, cols = torch.arange(h * w) // w, torch.arange(h * w) % w
    same_row, same_col = rows[:, None] == rows[None], cols[:, None] == cols[None]
    d_col, d_row = (cols[:, None] - cols[None]).abs().double(), (rows[:, None] - rows[None]).abs().double()
    heads, lepe = projections(mixer, x, hw)
    outs = []
    for i, (qh, kh, vh) in enumerate(heads):
        logits, log_gamma = qh @ kh.transpose(1, 2), math.log(gamma(mixer, i))
        a_row = axial_map(logits, same_row, d_col, log_gamma)
        a_col = axial_map(logits, same_col, d_row, log_gamma)
        outs.append(a_col @ (a_row @ vh))
    return mixer.out_proj(torch.cat(outs, -1) + lepe)


@pytest.mark.parametrize("decomposed", [False, True])
@pytest.mark.parametrize("hw", GRIDS)
def test_matches_the_dense_oracle_outputs_and_gradients(decomposed, hw):
    mixer = randomize_(ManhattanSelfAttention(16, 2, decomposed=decomposed).double(), std=0.2)
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64, requires_grad=True)
    oracle = dense_decomposed if decomposed else dense_full
    upstream = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    results = []
    for fn in (lambda: mixer(x, hw), lambda: oracle(mixer, x, hw)):
        mixer.zero_grad()
        x.grad = None
        out = fn()
        (out * upstream).sum().backward()
        results.append((out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in mixer.named_parameters()}))
    (out, gx, gp), (ref, ref_gx, ref_gp) = results
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-9, atol=1e-10)
    for name in ref_gp:
        torch.testing.assert_close(gp[name], ref_gp[name], rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize("decomposed", [False, True])
def test_without_theta_shift_and_other_gamma_range(decomposed):
    mixer = randomize_(ManhattanSelfAttention(12, 3, decomposed=decomposed, theta_shift=False, heads_range=4.0)
                       .double(), std=0.2)
    x = torch.randn(2, 15, 12, dtype=torch.float64)
    oracle = dense_decomposed if decomposed else dense_full
    torch.testing.assert_close(mixer(x, (3, 5)), oracle(mixer, x, (3, 5)), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("hw", [(1, 9), (7, 1)])
def test_decomposed_equals_full_on_a_single_line(hw):
    full = randomize_(ManhattanSelfAttention(16, 4), std=0.2)
    axial = ManhattanSelfAttention(16, 4, decomposed=True)
    axial.load_state_dict(full.state_dict())
    x = torch.randn(2, hw[0] * hw[1], 16)
    torch.testing.assert_close(axial(x, hw), full(x, hw), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decomposed", [False, True])
def test_mixer_contract(decomposed):
    check_contract(ManhattanSelfAttention(32, 4, decomposed=decomposed), 32)


def test_softmax_runs_in_float32_under_autocast(monkeypatch):
    seen = []
    sdpa = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype, attn_mask.dtype))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    for decomposed in (False, True):
        mixer = ManhattanSelfAttention(16, 2, decomposed=decomposed)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = mixer(torch.randn(2, 12, 16), (3, 4))
        assert out.dtype == torch.bfloat16
    assert seen and all(dtypes == (torch.float32,) * 4 for dtypes in seen)


def test_decomposed_form_never_attends_across_the_whole_grid(monkeypatch):
    lengths = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda q, k, v, **kw: lengths.append(k.shape[-2]) or sdpa(q, k, v, **kw))
    ManhattanSelfAttention(16, 2, decomposed=True)(torch.randn(1, 48, 16), (6, 8))
    assert sorted(lengths) == [6, 8]  # one batched call per axis, never an (N, N) map



@pytest.mark.parametrize("decomposed", [False, True])
def test_flop_counter_sees_the_attention_products(decomposed):
    dim, heads, (h, w) = 32, 4, (6, 10)
    n, d = h * w, dim // heads
    macs = count_macs(OnGrid(ManhattanSelfAttention(dim, heads, decomposed=decomposed), (h, w)),
                      (torch.randn(1, n, dim),))
    attended = h + w if decomposed else n  # keys per query
    assert macs == 4 * n * dim * dim + 25 * n * dim + heads * n * attended * 2 * d


def test_init_weights_covers_every_parameter():
    mixer = ManhattanSelfAttention(64, 4)
    assert_init_covers_every_parameter(mixer)
    for linear in (mixer.q_proj, mixer.k_proj, mixer.v_proj, mixer.out_proj):
        assert linear.weight.std().item() == pytest.approx(0.02, rel=0.15) and not linear.bias.any()


def test_tables_built_while_sampling_serve_training():
    mixer = ManhattanSelfAttention(16, 2)
    with torch.inference_mode():
        mixer(torch.randn(1, 33, 16), (3, 11))  # a grid no other test uses: masks and RoPE tables are built here
    mixer(torch.randn(1, 33, 16), (3, 11)).sum().backward()
    assert mixer.q_proj.weight.grad is not None


def test_extra_tokens_are_rejected_with_the_remedy():
    with pytest.raises(ValueError, match="retnet.*H\\*W = 3\\*4 = 12.*got 14.*conditioning='adaln_zero' or 'adaln'"):
        ManhattanSelfAttention(16, 2)(torch.randn(1, 14, 16), (3, 4))


def test_bad_widths_are_clear_errors():
    with pytest.raises(ValueError, match="retnet width 30 is not divisible by num_heads=4"):
        ManhattanSelfAttention(30, 4)
    with pytest.raises(ValueError, match="head width 5 .* must be even"):
        ManhattanSelfAttention(20, 4)
    ManhattanSelfAttention(20, 4, theta_shift=False)



def test_trains_decomposed():
    assert_trains(dict(type="retnet", decomposed=True))
