"""visionmix.allowlist: a config string resolves only to what the list enumerates, whatever package it lives in."""
import os
import subprocess

import pytest
import torch.nn as nn
from mmengine.dataset import BaseDataset
from mmengine.hooks import CheckpointHook, EMAHook, ProfilerHook
from mmengine.optim import LinearLR, OptimWrapper
from mmengine.visualization import LocalVisBackend, WandbVisBackend
from timm.layers import Mlp
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR

from visionmix import allowlist
from visionmix.datasets import DigitsDataset
from visionmix.mixers.attention import Attention


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch):
    monkeypatch.setattr(allowlist, "_user_prefixes", set())


class MyDataset(BaseDataset):
    """A subclass elsewhere inherits BaseDataset's unsafe annotation loading."""


@pytest.mark.parametrize("obj", [Attention, DigitsDataset, CheckpointHook, EMAHook, OptimWrapper, LinearLR,
                                 LocalVisBackend, nn.Linear, nn.LayerNorm, AdamW, CosineAnnealingLR, Mlp],
                         ids=lambda o: o.__name__)
def test_the_parts_of_a_training_run_are_allowed(obj):
    assert allowlist.allowed(obj)


@pytest.mark.parametrize("obj", [BaseDataset, MyDataset, ProfilerHook, WandbVisBackend, os.system, subprocess.Popen,
                                 eval, nn.Module.load_state_dict, open],
                         ids=lambda o: getattr(o, "__qualname__", str(o)))
def test_everything_else_is_refused(obj):
    assert not allowlist.allowed(obj)


def test_an_unsafe_reader_is_refused_with_its_reason_even_when_its_package_is_trusted():
    allowlist.trust_type_prefixes(["mmengine", __name__])
    assert not allowlist.allowed(BaseDataset) and not allowlist.allowed(MyDataset)
    assert "reads its ann_file with pickle (.pkl) or yaml.Loader (.yaml)" in allowlist.refusal("x", "model", MyDataset)


def test_what_the_user_trusts_joins_the_list_by_whole_dotted_components():
    assert not allowlist.allowed(subprocess.Popen) and not allowlist.importable("subprocess.Popen")
    allowlist.trust_type_prefixes(["subprocess."])
    assert allowlist.allowed(subprocess.Popen) and allowlist.importable("subprocess.Popen")
    assert not allowlist.importable("subprocessx.Popen")
    assert allowlist.importable("torch.nn.Linear") and not allowlist.importable("torch.nnx.Linear")
    assert not allowlist.importable("torch.hub.load")
