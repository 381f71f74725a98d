"""Every official row of the real model-zoo table (a row with a ``converter``) loads through the hub from a mirror.

For each such row, read from ``visionmix/zoo/model_zoo.yml`` itself (a new official row is covered without
editing this file), a random checkpoint is written in the row's official key layout and the wrapper form its
release has, shrunk in depth and width through ``cfg_options`` (input size, patch, channels and classes are the
row's own config's), under the name the hub looks for (:func:`visionmix.hub.file_name`) in a tmp folder served as
``VISIONMIX_ZOO_MIRROR``. ``load_pretrained`` must convert it and load it strictly, and one converted tensor must
equal the one written under its official name. Per converter source, a corrupted mirror file of a row pinned to
the good file's sha256 must be refused (:class:`visionmix.hub.HashMismatchError`) with nothing left in the cache.

Shape tables come from ``tests/converters`` (written from the official code). ``TORCH_HOME`` is a tmp folder: the
real download cache is never touched, and nothing is fetched from the network.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from tests.converters.helpers import dit_shapes, official_state
from tests.converters.test_dico import dico_shapes
from tests.converters.test_drwkv import drwkv_shapes
from tests.converters.test_uvit import uvit_shapes
from visionmix import hub
from visionmix.config import load_config

OFFICIAL = [name for name in hub.list_models() if hub.model_info(name).get("converter")]


@dataclass(frozen=True)
class Shrunk:
    """How one converter source's rows are made small: ``options`` (cfg_options on top of the row's), the official
    shapes from the shrunk backbone config, how the release wraps its state dict, and one (official key, converted
    key) pair to compare."""

    options: dict[str, Any]
    shapes: Callable[[Any], dict[str, tuple[int, ...]]]
    wrap: Callable[[dict], Any]
    probe: tuple[str, str]


def _grid(b) -> int:
    assert b.input_size % b.patch_size == 0, (b.input_size, b.patch_size)
    return b.input_size // b.patch_size


def _plain(state: dict) -> dict:
    return state


def _ema_only(state: dict) -> dict:
    return {"ema": state}


def _training_pickle(state: dict) -> dict:
    """Diffusion-RWKV's train.py save: raw weights, EMA (what gets converted), AdamW state and the argparse args."""
    raw = {k: torch.zeros_like(v) for k, v in state.items()}  # differs from the EMA: proves "ema" is the one read
    first = next(iter(state.values()))
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(first),
                         "exp_avg_sq": torch.zeros_like(first)}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.0, "params": [0]}]}
    args = argparse.Namespace(model="DRWKV-L/2", image_size=64, task_type="uncond", num_classes=-1, lr=1e-4,
                              latent_space=False, resume=None, epochs=1400, global_batch_size=256)
    return {"model": raw, "ema": state, "opt": opt, "args": args}


ISOTROPIC = {"model.backbone.depth": 2, "model.backbone.hidden_size": 64, "model.backbone.num_heads": 2}

SHRUNK: dict[str, Shrunk] = {
    # DiT's download.py files are the plain EMA state dict; SiT's release is DiT's layout saved the same way.
    "dit": Shrunk(ISOTROPIC,
                  lambda b: dit_shapes(b.depth, b.hidden_size, b.patch_size, b.in_channels, _grid(b), b.num_classes,
                                       learn_sigma=b.learn_sigma, mlp_ratio=b.ffn.mlp_ratio),
                  _plain, ("final_layer.linear.weight", "backbone.final_layer.linear.weight")),
    "sit": Shrunk(ISOTROPIC,
                  lambda b: dit_shapes(b.depth, b.hidden_size, b.patch_size, b.in_channels, _grid(b), b.num_classes,
                                       learn_sigma=b.learn_sigma, mlp_ratio=b.ffn.mlp_ratio),
                  _plain, ("final_layer.linear.weight", "backbone.final_layer.linear.weight")),
    # DiCo's files are read through find_model, which takes checkpoint["ema"].
    "dico": Shrunk({"model.backbone.hidden_size": 32, "model.backbone.depths": [1, 1, 1, 1, 1]},
                   lambda b: dico_shapes(b.hidden_size, list(b.depths), mlp_ratio=int(b.ffn.mlp_ratio),
                                         in_channels=b.in_channels, num_classes=b.num_classes),
                   _ema_only, ("final_layer.out_proj.weight", "backbone.final_layer.out_proj.weight")),
    # U-ViT's released .pth is the network's plain state dict; its label table holds the null class too.
    "uvit": Shrunk(ISOTROPIC,
                   lambda b: uvit_shapes(b.depth, b.hidden_size, b.patch_size, b.in_channels, _grid(b),
                                         b.num_classes + 1 if b.num_classes else 0, qkv_bias=b.mixer.qkv_bias,
                                         mlp_ratio=int(b.ffn.mlp_ratio)),
                   _plain, ("decoder_pred.weight", "backbone.final_layer.linear.weight")),
    # Diffusion-RWKV's upload is a whole training pickle; depth stays odd like the official 37 (in, mid, out).
    "drwkv": Shrunk({**ISOTROPIC, "model.backbone.depth": 3},
                    lambda b: drwkv_shapes(b.hidden_size, b.depth, b.in_channels, _grid(b), b.num_classes,
                                           patch=b.patch_size, hidden_rate=b.ffn.hidden_rate),
                    _training_pickle, ("mid_block.att.spatial_decay", "backbone.mid_block.mixer.spatial_decay")),
}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private torch hub cache; the zoo's cache folder inside it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    hub._VERIFIED.clear()
    yield tmp_path / "torch" / "hub" / "checkpoints" / "visionmix"
    hub._VERIFIED.clear()


def shrunk_official(row: dict) -> tuple[Shrunk, dict[str, torch.Tensor], Any]:
    """(the source's shrink, the random official state dict, the object the release's file holds)."""
    source = row["converter"]
    assert source in SHRUNK, (f"zoo row {row['name']!r} uses converter {source!r}, which this test cannot shrink "
                              f"yet: add it to SHRUNK in {Path(__file__).name}")
    shrunk = SHRUNK[source]
    options = {**(row.get("cfg_options") or {}), **shrunk.options}
    backbone = load_config(hub.resolve_config(row["config"]), options).model.backbone
    state = {k: v.float() for k, v in official_state(shrunk.shapes(backbone)).items()}  # releases are fp32
    return shrunk, state, shrunk.wrap(state)


def mirror_file(row: dict, folder: Path, checkpoint: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hub.file_name(row)
    torch.save(checkpoint, path)
    return path


def test_every_official_row_is_a_url_of_a_source_this_test_shrinks():
    sources = {hub.model_info(name)["converter"] for name in OFFICIAL}
    assert OFFICIAL and sources <= set(SHRUNK), f"rows of {sorted(sources - set(SHRUNK))}: add them to SHRUNK"
    local = [name for name in OFFICIAL if not str(hub.model_info(name)["weights"]).startswith("https://")]
    assert not local, f"official rows whose weights are no URL (a mirror cannot serve them): {local}"


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_row_loads_from_a_mirror(name, cache, tmp_path, monkeypatch):
    row = hub.model_info(name)
    shrunk, state, checkpoint = shrunk_official(row)
    written = mirror_file(row, tmp_path / "mirror", checkpoint)
    monkeypatch.setenv(hub.MIRROR_ENV, str(written.parent))

    model, info = hub.load_pretrained(name, cfg_options=shrunk.options)  # strict load

    assert info["weights_path"] == str(cache / hub.file_name(row))
    assert Path(info["weights_path"]).read_bytes() == written.read_bytes()
    assert (cache / (hub.file_name(row) + ".sha256")).is_file()  # unpinned: trusted on first use, recorded
    official, converted = shrunk.probe
    got = model.state_dict()[converted]
    assert got.dtype == torch.float32 and torch.equal(got, state[official]), (official, converted)
    assert not model.training


@pytest.mark.parametrize("source", sorted({hub.model_info(n)["converter"] for n in OFFICIAL}))
def test_a_corrupt_mirror_file_of_a_pinned_row_is_refused(source, cache, tmp_path, monkeypatch):
    name = next(n for n in OFFICIAL if hub.model_info(n)["converter"] == source)
    row = hub.model_info(name)
    shrunk, _, checkpoint = shrunk_official(row)
    written = mirror_file(row, tmp_path / "mirror", checkpoint)
    good = hub.sha256_of(written)
    pinned = {k: v for k, v in row.items() if k not in ("name", "table")}
    table = tmp_path / "model_zoo.yml"
    table.write_text(yaml.safe_dump({"models": {name: {**pinned, "sha256": good}}}))
    data = bytearray(written.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensor data
    written.write_bytes(bytes(data))
    monkeypatch.setenv(hub.MIRROR_ENV, str(written.parent))

    with pytest.raises(hub.HashMismatchError, match=rf"expected {good}"):
        hub.load_pretrained(name, cfg_options=shrunk.options, table=table)
    assert not cache.exists() or not any(cache.iterdir()), sorted(p.name for p in cache.iterdir())
