"""``load_from`` takes any weights source -- a zoo row, a plain or converted state dict (.pt or .safetensors), a
training checkpoint -- and trains from it with EMA. With the learning rate at zero the run must keep exactly the
weights it was given: the oracle is the source file itself, read independently of the loader under test."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.tools.helpers import ROOT, load_tool
from visionmix.checkpoint_io import read_checkpoint

pytestmark = [pytest.mark.slow]

train = load_tool("train")
QUICKSTART = ROOT / "configs/quickstart/drwkv_digits8.py"
ZOO_FILE = ROOT / "visionmix/zoo/digits/drwkv_digits.safetensors"  # the drwkv_digits row's packaged weights
CHEAP = ["train_dataloader.batch_size=4", "model.sampling.steps=2", "custom_hooks.sample_grid.per_class=1",
         "default_hooks.logger.interval=1"]


def run(config: Path, work: Path, *options: str) -> dict:
    """Train ``config`` for two iterations at learning rate 0 (every update is a no-op) and read the last checkpoint."""
    argv = [str(config), "--work-dir", str(work), "--cfg-options", "train_cfg.max_iters=2",
            "default_hooks.checkpoint.interval=2", "optim_wrapper.optimizer.lr=0", *CHEAP, *options]
    assert train.main(argv) in (0, None)
    return read_checkpoint(str(work / "iter_2.pth"))


def assert_kept(checkpoint: dict, expected: dict[str, torch.Tensor]) -> None:
    """The model (EMA weights, mmengine's ``state_dict``) and the raw weights both equal ``expected``."""
    ema = checkpoint["state_dict"]
    raw = {k.removeprefix("module."): v for k, v in checkpoint["ema_state_dict"].items() if k != "steps"}
    for name, value in expected.items():
        assert torch.allclose(ema[name], value.float(), rtol=1e-6, atol=1e-7), name
        assert torch.equal(raw[name], value.float()), name


@pytest.fixture(scope="module")
def zoo_weights() -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(ZOO_FILE)).items()}


@pytest.mark.parametrize("form", ["zoo", "plain_pt", "converted_safetensors", "training_checkpoint"])
def test_every_weights_source_fine_tunes_with_ema(form, zoo_weights, tmp_path):
    backbone = {k.removeprefix("backbone."): v for k, v in zoo_weights.items()}  # a converter's output layout
    if form == "zoo":
        source = "zoo:drwkv_digits"
    elif form == "plain_pt":
        source = tmp_path / "plain.pt"
        torch.save({k: v.float() for k, v in zoo_weights.items()}, source)
    elif form == "converted_safetensors":
        source = tmp_path / "converted.safetensors"
        save_file({k: v.float().contiguous() for k, v in backbone.items()}, str(source))
    else:  # a training checkpoint of an earlier run (itself started from the zoo row)
        run(QUICKSTART, tmp_path / "first", "load_from=zoo:drwkv_digits")
        source = tmp_path / "first/iter_2.pth"
    checkpoint = run(QUICKSTART, tmp_path / "work", f"load_from={source}")
    assert_kept(checkpoint, zoo_weights)
    assert checkpoint["meta"]["iter"] == 2


def test_the_readme_fine_tune_line_trains_twenty_iterations(tmp_path):
    line = next(l.strip() for l in (ROOT / "README.md").read_text().splitlines() if l.strip().startswith("load_from ="))
    line = re.sub(r"\s+#.*$", "", line)
    assert line == 'load_from = "zoo:drwkv_digits"'
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)  # relative read_base() imports need the tree
    config = configs / "quickstart/finetune.py"
    config.write_text(QUICKSTART.read_text() + f"\n{line}\n")
    argv = [str(config), "--work-dir", str(tmp_path / "work"), "--cfg-options", "train_cfg.max_iters=20",
            "default_hooks.checkpoint.interval=20", *CHEAP]
    assert train.main(argv) in (0, None)
    checkpoint = read_checkpoint(str(tmp_path / "work/iter_20.pth"))
    assert checkpoint["meta"]["iter"] == 20 and "ema_state_dict" in checkpoint
    logs = "".join(p.read_text() for p in (tmp_path / "work").glob("*/*.log"))
    assert "Load checkpoint from zoo:drwkv_digits" in logs
