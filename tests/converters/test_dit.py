"""DiT -> visionmix: the converted model computes DiT's forward (written out on the official weights)."""
import argparse

import numpy as np
import pytest
import torch

from tests.converters.helpers import (F64, ROOT, assert_loads_at_full_size, backbone_options, converted_model,
                                      dit_forward, dit_shapes, official_state)
from visionmix import build_model
from visionmix.config import load_config
from visionmix.converters import LayoutError, convert, unwrap

TINY = dict(hidden_size=32, depth=2, num_heads=4, num_classes=10)


def tiny_official(grid: int = 4, seed: int = 0) -> dict:
    return official_state(dit_shapes(depth=2, hidden=32, patch=2, in_channels=4, grid=grid, num_classes=10), seed=seed)


@pytest.mark.parametrize("config, size", [("configs/dit/dit_xl2_in256.py", 8), ("configs/dit/dit_xl2_in512.py", 12)])
def test_converted_model_matches_the_official_forward(config, size):
    official = tiny_official(grid=size // 2)
    model = converted_model("dit", official, config, input_size=size, **TINY)
    x = torch.randn(3, 4, size, size, dtype=F64)
    t, y = torch.tensor([0, 417, 999]), torch.tensor([3, 10, 7])  # 10: the null label
    expected = dit_forward(official, x, t, y, heads=4, patch=2)
    assert expected.shape == (3, 8, size, size)
    torch.testing.assert_close(model.backbone(x, t, y), expected, rtol=1e-10, atol=1e-10)


def test_a_label_row_changes_only_its_class():
    official = tiny_official()
    x, t = torch.randn(2, 4, 8, 8, dtype=F64), torch.tensor([50, 50])
    y = torch.tensor([3, 5])
    before = converted_model("dit", official, "configs/dit/dit_xl2_in256.py", input_size=8, **TINY).backbone(x, t, y)
    official["y_embedder.embedding_table.weight"][3] += 1.0
    after = converted_model("dit", official, "configs/dit/dit_xl2_in256.py", input_size=8, **TINY).backbone(x, t, y)
    assert (after[0] - before[0]).abs().max() > 1e-3
    torch.testing.assert_close(after[1], before[1], rtol=0, atol=0)


@pytest.mark.parametrize("config, grid", [("configs/dit/dit_xl2_in256.py", 16), ("configs/dit/dit_xl2_in512.py", 32)])
def test_released_size_loads_strictly(config, grid):
    shapes = dit_shapes(depth=28, hidden=1152, patch=2, in_channels=4, grid=grid, num_classes=1000)
    assert_loads_at_full_size("dit", shapes, config)


def official_sincos(dim: int, grid: int) -> np.ndarray:
    """DiT / MAE's get_2d_sincos_pos_embed: the first half of the channels encodes the first meshgrid output,
    which (meshgrid(w, h)) is the column index; each half is [sin(p w_i), cos(p w_i)], w_i = 10000^(-i/(dim/4))."""
    cols, rows = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))

    def one_d(half: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(half // 2, dtype=np.float64) / (half / 2.0))
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([one_d(dim // 2, cols), one_d(dim // 2, rows)], axis=1)


def test_the_stored_table_is_the_one_visionmix_recomputes():
    """DiT files store their frozen sin-cos table and it is copied as stored; visionmix recomputes the same
    table for other grids, so both must follow the official formula."""
    cfg = load_config(ROOT / "configs/dit/dit_xl2_in256.py", backbone_options(input_size=12, **TINY))
    model = build_model(cfg.model)
    expected = torch.from_numpy(official_sincos(32, 6)).float()[None]
    torch.testing.assert_close(model.backbone.pos_embed.pos_embed.data, expected, rtol=0, atol=1e-6)


def test_training_checkpoints_unwrap_to_the_ema_weights():
    ema, raw = tiny_official(seed=1), tiny_official(seed=2)
    training = {"model": raw, "ema": ema, "opt": {"state": {}, "param_groups": []}, "args": argparse.Namespace(x=1)}
    assert all(unwrap("dit", training)[k] is ema[k] for k in ema)
    assert all(unwrap("dit", {"model": raw})[k] is raw[k] for k in raw)
    ddp = {"module." + k: v for k, v in ema.items()}
    assert convert("dit", ddp).keys() == convert("dit", ema).keys()


def test_output_keys_are_the_diffusion_models():
    state = convert("dit", tiny_official())
    assert all(k.startswith("backbone.") for k in state)
    assert state["backbone.pos_embed.pos_embed"].shape == (1, 16, 32)
    assert state["backbone.blocks.1.adaLN_modulation.linear.weight"].shape == (192, 32)


def test_missing_and_unexpected_keys_are_named():
    official = tiny_official()
    del official["blocks.1.attn.proj.bias"]
    official["blocks.0.attn.q_norm.weight"] = torch.ones(8, dtype=F64)
    with pytest.raises(LayoutError, match=r"1 missing \(blocks\.1\.attn\.proj\.bias\), "
                                          r"1 unexpected \(blocks\.0\.attn\.q_norm\.weight\)"):
        convert("dit", official)


def test_wrapper_without_a_state_dict_is_a_clear_error():
    with pytest.raises(LayoutError, match="top-level keys are: step, optimizer"):
        convert("dit", {"step": 3, "optimizer": {"lr": 1.0}})
    with pytest.raises(LayoutError, match="holds a dict"):
        convert("dit", [torch.zeros(1)])
