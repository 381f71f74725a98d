"""The MAC counter against hand-written closed forms (an oracle independent of the counter), on real
CPU tensors and on the meta device the flops tool counts on."""
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from visionmix.backbones import IsotropicBackbone
from visionmix.flops import UncountedOpError, backbone_inputs, count_macs, count_params, is_matmul_class
from visionmix.mixers.bi_rwkv import BiRWKV

DEVICES = ["cpu", "meta"]


def closed_form_macs(d: int, depth: int, n: int, p: int, c_in: int, freq: int = 256) -> int:
    """DiT multiply-adds written out: blocks (qkv, proj, MLP, attention products, adaLN) + embed + head."""
    per_block = 12 * d * d * n + 2 * n * n * d + 6 * d * d
    embed = n * p * p * c_in * d + freq * d + d * d
    head = 2 * d * d + n * d * p * p * 2 * c_in
    return depth * per_block + embed + head


@pytest.mark.parametrize("device", DEVICES)
def test_dit_macs_match_the_closed_form(device):
    with torch.device(device):
        model = IsotropicBackbone(16, 2, 4, 64, 3, 4, num_classes=10).eval()
    x, t, y = backbone_inputs(model)
    assert x.device.type == device and y is not None
    assert count_macs(model, (x, t, y)) == closed_form_macs(64, 3, 64, 2, 4)


def test_uvit_style_backbone_counts_the_same_on_meta_and_on_real_tensors():
    kwargs = dict(mixer="attention", conditioning="in_context", skip="long", num_classes=10, pos_embed="learned",
                  time_embed_mlp=False, first_norm=True, final_norm=True, init_style="vit")
    counts = {}
    for device in DEVICES:
        with torch.device(device):
            model = IsotropicBackbone(8, 2, 3, 32, 5, 4, **kwargs).eval()
        counts[device] = count_macs(model, backbone_inputs(model))
    n, d = 16 + 2, 32  # 4x4 patches + [label, time] tokens
    blocks = 5 * (12 * d * d * n + 2 * n * n * d) + 2 * (2 * d * d * n)  # + skip_linear of the 2 out-blocks
    embed_head = 16 * 2 * 2 * 3 * d + n * d * 2 * 2 * 6
    assert counts["cpu"] == counts["meta"] == blocks + embed_head


def _fvcore_macs(model, inputs):
    """The counter this module replaced: fvcore's jit trace with the project's handles."""
    import warnings

    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

    def sdpa(ins, outs):
        q, k, v = (get_shape(x) for x in ins[:3])
        return int(torch.tensor(q[:-2]).prod()) * q[-2] * k[-2] * (q[-1] + v[-1])

    analysis = FlopCountAnalysis(model, inputs).set_op_handle(
        **{f"aten::{n}": (lambda i, o: 0) for n in ("layer_norm", "group_norm", "batch_norm", "instance_norm")},
        **{"aten::scaled_dot_product_attention": sdpa})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(analysis.total())


class Zoo(nn.Module):
    """Every operator kind of the configs' mixers and scaffolds that fvcore charges."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Sigmoid())
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8)
        self.lin = nn.Linear(8, 24)

    def forward(self, x):
        x = self.gn(self.dw(self.conv(x)))
        x = x * self.ca(x) + F.interpolate(F.adaptive_avg_pool2d(x, (3, 4)), size=(6, 8), mode="bilinear")
        x = F.interpolate(x[:, :, ::2, ::2], scale_factor=2.0)
        tokens = self.ln(x.flatten(2).transpose(1, 2))
        q, k, v = self.lin(tokens).view(2, 48, 3, 2, 4).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v) @ torch.randn(4, 5)
        return y.sum() + torch.bmm(tokens, tokens.transpose(1, 2)).sum()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit, which fvcore traces with, is deprecated
@pytest.mark.parametrize("make", [Zoo, lambda: IsotropicBackbone(8, 2, 3, 32, 2, 4, num_classes=10).eval()],
                         ids=["zoo", "dit"])
def test_counts_equal_the_fvcore_counter_they_replaced(make):
    torch.manual_seed(0)
    model = make()
    inputs = (torch.randn(2, 4, 6, 8),) if isinstance(model, Zoo) else backbone_inputs(model)
    with torch.no_grad():
        expected = _fvcore_macs(model, inputs)
    assert expected > 0
    assert count_macs(model, inputs) == expected
    with torch.device("meta"):
        torch.manual_seed(0)
        meta = make()
    assert count_macs(meta, tuple(t.to("meta") for t in inputs)) == expected


def test_params_count_frozen_tables():
    model = IsotropicBackbone(16, 2, 4, 64, 3, 4, num_classes=10)
    total, trainable = count_params(model)
    assert total - trainable == 64 * 64  # the frozen sin-cos table


class Fn(nn.Module):
    def __init__(self, fn, *mods):
        super().__init__()
        self.fn, self.mods = fn, nn.ModuleList(mods)

    def forward(self, *args):
        return self.fn(*self.mods, *args)


# (module, input shapes, closed-form MACs)
CASES = {
    "linear_bias_3d": (Fn(lambda lin, x: lin(x), nn.Linear(12, 20)), [(2, 7, 12)], 2 * 7 * 12 * 20),
    "linear_no_bias_3d": (Fn(lambda lin, x: lin(x), nn.Linear(12, 20, bias=False)), [(2, 7, 12)], 2 * 7 * 12 * 20),
    "conv2d_dense_strided": (Fn(lambda c, x: c(x), nn.Conv2d(3, 8, 4, stride=2, padding=1)), [(2, 3, 10, 10)],
                             2 * 8 * 5 * 5 * 3 * 4 * 4),
    "conv2d_depthwise_5x5": (Fn(lambda c, x: c(x), nn.Conv2d(16, 16, 5, padding=2, groups=16)), [(1, 16, 6, 9)],
                             16 * 6 * 9 * 25),
    "conv2d_grouped": (Fn(lambda c, x: c(x), nn.Conv2d(8, 12, 3, padding=1, groups=4)), [(1, 8, 5, 5)],
                       12 * 5 * 5 * 2 * 9),
    "einsum_contraction": (Fn(lambda a, b: torch.einsum("bhnd,bhmd->bhnm", a, b)), [(2, 3, 5, 4), (2, 3, 6, 4)],
                           2 * 3 * 5 * 6 * 4),
    # torch sums i out of a first (a reduction: zero), then contracts j: (b, j) @ (j, k)
    "einsum_reduce_then_contract": (Fn(lambda a, b: torch.einsum("bij,jk->bk", a, b)), [(2, 3, 4), (4, 5)],
                                    2 * 4 * 5),
    "matmul_broadcast": (Fn(lambda a, b: a @ b), [(2, 3, 5, 4), (4, 7)], 2 * 3 * 5 * 4 * 7),
    "bmm": (Fn(lambda a, b: torch.bmm(a, b)), [(3, 5, 4), (3, 4, 6)], 3 * 5 * 4 * 6),
    "baddbmm": (Fn(lambda a, b, c: torch.baddbmm(a, b, c)), [(3, 5, 6), (3, 5, 4), (3, 4, 6)], 3 * 5 * 4 * 6),
    "matrix_vector": (Fn(lambda a, v: a @ v), [(5, 4), (4,)], 5 * 4),
    "dot": (Fn(lambda a, b: torch.dot(a, b)), [(9,), (9,)], 9),
    # softmax(QK^T + mask) V with d_v != d: B*H*N*M*(d + d_v)
    "sdpa_float_mask": (Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                        [(2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 4), (5, 6)], 2 * 3 * 5 * 6 * (8 + 4)),
    "sdpa_plain": (Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
                   [(1, 2, 16, 8), (1, 2, 16, 8), (1, 2, 16, 8)], 2 * 16 * 16 * 16),
    # fvcore's charges, kept: pooling 1 per input element, upsampling 1 (nearest) / 4 (bilinear) per output element
    "adaptive_pool_1x1": (Fn(lambda p, x: p(x), nn.AdaptiveAvgPool2d(1)), [(2, 3, 4, 5)], 2 * 3 * 4 * 5),
    "adaptive_pool_2x3": (Fn(lambda x: F.adaptive_avg_pool2d(x, (2, 3))), [(1, 3, 4, 6)], 3 * 4 * 6),
    "upsample_nearest": (Fn(lambda x: F.interpolate(x, scale_factor=2)), [(1, 3, 4, 5)], 3 * 8 * 10),
    "upsample_bilinear": (Fn(lambda x: F.interpolate(x, size=(7, 9), mode="bilinear")), [(1, 3, 4, 5)], 4 * 3 * 7 * 9),
    "grid_sample": (Fn(lambda x, g: F.grid_sample(x, g, align_corners=False)), [(1, 3, 4, 5), (1, 6, 7, 2)],
                    4 * 3 * 6 * 7),
    # norms, pads, unfold / gather, elementwise work: zero in this convention
    "zero_cost": (Fn(lambda ln, gn, x: F.unfold(gn(x), 3, padding=1).gather(1, torch.zeros(1, 2, 20, dtype=torch.long,
                                                                                          device=x.device)).sum()
                     + ln(x).softmax(-1).sum(), nn.LayerNorm(5), nn.GroupNorm(2, 4)), [(1, 4, 4, 5)], 0),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CASES)
def test_op_macs_match_closed_forms(name, device):
    module, shapes, expected = CASES[name]
    module = module.to(device)
    assert count_macs(module, tuple(torch.randn(s, device=device) for s in shapes)) == expected


@pytest.mark.parametrize("device", DEVICES)
def test_attention_mixer_counts_projections_and_products(device):
    from visionmix.mixers.attention import Attention

    dim, heads, n = 32, 4, 10
    with torch.device(device):
        mixer = Attention(dim, heads)
    assert count_macs(mixer, (torch.randn(2, n, dim, device=device), (2, 5))) == 2 * (4 * n * dim * dim + 2 * n * n * dim)


def test_bi_wkv_counts_13_macs_per_element_on_meta_whatever_the_backend(monkeypatch):
    monkeypatch.setenv("VISIONMIX_WKV_BACKEND", "torch")  # the count is the operator's, not the fallback's
    dim, (h, w), batch = 24, (3, 5), 2
    with torch.device("meta"):
        mixer = BiRWKV(dim)
    t = h * w
    macs = count_macs(lambda x: mixer(x, (h, w)), (torch.randn(batch, t, dim, device="meta"),))
    assert macs == batch * (4 * t * dim * dim + 13 * t * dim)  # key, value, receptance, output + the scan
    assert os.environ["VISIONMIX_WKV_BACKEND"] == "torch"  # restored


def test_bi_wkv_operator_formula():
    k = torch.empty(3, 7, 10, device="meta")
    w = torch.empty(10, device="meta")
    macs = count_macs(lambda *a: torch.ops.visionmix.bi_wkv(*a), (w, w, k, k))
    assert macs == 13 * 3 * 7 * 10


class Fp32Island(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):  # rejects "meta" unless the counter handles it
            return self.lin(x.float())


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_islands_count_on_meta_and_torch_autocast_is_restored(device):
    autocast = torch.autocast
    assert count_macs(Fp32Island().to(device), (torch.randn(4, 6, device=device),)) == 4 * 6 * 3
    assert torch.autocast is autocast and torch.amp.autocast is autocast


lib = torch.library.Library("visionmix_flops_test", "FRAGMENT")
lib.define("fused_matmul(Tensor a, Tensor b) -> Tensor")
lib.impl("fused_matmul", lambda a, b: a @ b, "CompositeExplicitAutograd")
lib.impl("fused_matmul", lambda a, b: a.new_empty(a.shape[0], b.shape[1]), "Meta")


@pytest.mark.parametrize("device", DEVICES)
def test_uncounted_matmul_class_op_fails_loudly(device):
    a = torch.randn(4, 4, device=device)
    with pytest.raises(UncountedOpError, match="fused_matmul"):
        count_macs(lambda x: torch.ops.visionmix_flops_test.fused_matmul(x, x), (a,))


def test_matmul_class_names():
    for name in ("aten.mm", "aten::bmm", "aten.baddbmm.default", "aten._int_mm", "aten.mv", "aten.dot",
                 "aten.convolution", "aten._convolution", "aten.conv2d", "aten._native_multi_head_attention",
                 "aten._scaled_dot_product_flash_attention_for_cpu", "aten._addmm_activation", "aten.linear",
                 "visionmix::bi_wkv", "visionmix.some_new_scan", "other::fused_matmul", "xformers::attention"):
        assert is_matmul_class(name), name
    for name in ("aten.lgamma", "aten.digamma", "aten.cummax", "aten.mvlgamma", "aten.upsample_linear1d",
                 "aten._convert_weight_to_int4pack", "aten.native_layer_norm", "aten.add", "aten.gather",
                 "visionmix_native::chunk_size", "aten._local_scalar_dense"):
        assert not is_matmul_class(name), name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit, which fvcore traces with, is deprecated
@pytest.mark.parametrize("config", ["configs/dit/dit_s2_in256.py", "configs/dico/dico_s_in256.py"])
def test_fvcore_cross_checks_the_counter_on_whole_configs(config):
    """fvcore traces the model with torch.jit and counts with its own operator handles: an independent count of a
    whole DiT-S/2 and DiCo-S (their published 6.06 / 4.25 GMACs) that the project's counter must match to 0.1%."""
    from visionmix import build_model
    from visionmix.config import load_config

    root = Path(__file__).resolve().parents[1]
    torch.manual_seed(0)
    backbone = build_model(load_config(root / config).model).backbone.eval()
    inputs = backbone_inputs(backbone)
    with torch.no_grad():
        fvcore_count = _fvcore_macs(backbone, inputs)
    ours = count_macs(backbone, inputs)
    assert abs(ours - fvcore_count) <= 1e-3 * fvcore_count, (ours, fvcore_count)
