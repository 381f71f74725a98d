"""tools/sample.py on bad input: one-line errors, exit 2 for usage and 1 at run time, and no file written.

The table runs in-process through ``run_tool`` (one shared tiny checkpoint, imports paid once); two rows
and ``--help`` also run as real subprocesses to show they answer without importing torch.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.tools.helpers import ROOT, load_tool, tiny_digits_config
from visionmix.cli import run_tool
from visionmix.engine import VisionMixRunner

sample = load_tool("sample")
QUICKSTART = str(ROOT / "configs/quickstart/drwkv_digits8.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Dict[str, Path]:
    """One 1-iteration training of the tiny digits model: its config, checkpoint and an output folder
    that already holds a file (which must stay untouched)."""
    root = tmp_path_factory.mktemp("sample_errors")
    cfg = tiny_digits_config(root / "run", max_iters=1, checkpoint_interval=1)
    cfg.dump(str(root / "tiny.yaml"))
    train = load_tool("train")
    VisionMixRunner.from_cfg(train.apply_args(cfg, train.parse_args([str(root / "tiny.yaml"),
                                                                     "--work-dir", cfg.work_dir]))).train()
    out = root / "out"
    out.mkdir()
    (out / "samples_4_cfg1.0.npz").write_bytes(b"earlier results")
    (root / "truncated.pth").write_bytes((root / "run/iter_1.pth").read_bytes()[:5000])
    return {"config": root / "tiny.yaml", "ckpt": root / "run/iter_1.pth", "out": out, "root": root}


def snapshot(*folders: Path) -> Dict[str, Tuple[int, int]]:
    """Every file below the folders with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in f.rglob("*") if p.is_file()}


def argv(run: Dict[str, Path], *extra: str, config: str = "", ckpt: str = "") -> List[str]:
    return [config or str(run["config"]), "--checkpoint", ckpt or str(run["ckpt"]), "--out", str(run["out"]),
            "--num", "2", "--steps", "1", "--device", "cpu", *extra]


NO_NULL = ("--cfg-options", "model.backbone.class_dropout_prob=0")
ROWS = [  # id, extra arguments, exit code, first stderr line (regex)[, config]
    ("num_zero", ["--num", "0"], 2, r"error: --num must be a positive integer, got 0$"),
    ("num_negative", ["--num", "-5"], 2, r"error: --num must be a positive integer, got -5$"),
    ("num_not_int", ["--num", "abc"], 2, r"error: argument --num-samples/--num: invalid int value: 'abc'$"),
    ("batch_zero", ["--batch-size", "0"], 2, r"error: --batch-size must be a positive integer, got 0$"),
    ("steps_zero", ["--steps", "0"], 2, r"error: --steps must be a positive integer, got 0$"),
    ("cfg_nan", ["--cfg-scale", "nan"], 2, r"error: --cfg-scale must be a finite number >= 0 .*got nan$"),
    ("cfg_inf", ["--cfg-scale", "inf"], 2, r"error: --cfg-scale must be a finite number >= 0 .*got inf$"),
    ("cfg_negative", ["--cfg-scale", "-1"], 2, r"error: --cfg-scale must be a finite number >= 0 .*got -1.0$"),
    ("label_out_of_range", ["--labels", "3", "10"], 2,
     r"error: --labels: 10 is not a class of this model; use 0\.\.9 or -1 \(no label\)$"),
    ("label_below_minus_one", ["--labels", "-2"], 2, r"error: --labels: -2 is not a class of this model"),
    ("label_minus_one_without_null", ["--labels", "-1", *NO_NULL], 2,
     r"error: --labels: -1 is not a class of this model; use 0\.\.9 \(this model has no null label"),
    ("cfg_without_null", ["--cfg-scale", "1.5", *NO_NULL], 2, r"error: --cfg-scale 1\.5: guidance needs a null label"),
    ("labels_on_unconditional", ["--labels", "3", "--cfg-options", "model.backbone.num_classes=0"], 2,
     r"error: --labels: this model is unconditional \(num_classes=0\)$"),
    ("out_is_a_file", ["--out", "{out}/samples_4_cfg1.0.npz"], 2, r"error: --out .*samples_4_cfg1\.0\.npz is a file"),
    ("missing_checkpoint", ["--checkpoint", "{root}/run/iter_9.pth"], 1,
     r"error: checkpoint not found: .*/run/iter_9\.pth \(.*/run has iter_1\.pth\)$"),
    ("missing_config", [], 1, r"error: config file not found: .*/nope\.py$", "{root}/nope.py"),
    ("truncated_checkpoint", ["--checkpoint", "{root}/truncated.pth"], 1,
     r"error: checkpoint .*truncated\.pth is truncated or corrupt"),
    ("checkpoint_of_another_config", [], 1,
     r"error: checkpoint .*iter_1\.pth does not fit .*drwkv_digits8\.py: \d+ of \d+ tensors differ in shape, "
     r"\d+ missing, \d+ unexpected; it was trained with .*drwkv_digits8\.py \(IsotropicBackbone with BiRWKV: "
     r"hidden_size=32, depth=3", QUICKSTART),
]


def _call(args: List[str], capsys) -> Tuple[int, List[str]]:
    try:
        code = run_tool(sample.main, args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("extra,code,first,config", [(row + ("",))[1:5] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_is_one_line_and_writes_nothing(run, extra, code, first, config, capsys, monkeypatch):
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)
    extra = [e.format(out=run["out"], root=run["root"]) for e in extra]
    config = config.format(root=run["root"])
    before = snapshot(run["out"], run["root"] / "run")
    got, err = _call(argv(run, config=config) + extra, capsys)
    assert got == code, err
    assert re.match(first, err[0]), err
    assert before == snapshot(run["out"], run["root"] / "run")
    assert not list(run["out"].glob(".*"))


def test_mismatch_lists_five_tensors_with_shapes(run, capsys):
    code, err = _call(argv(run, config=QUICKSTART), capsys)
    examples = [line for line in err if line.startswith("  ")]
    assert code == 1 and len(examples) == 5
    assert re.match(r"  backbone\.\S+: checkpoint \(.*\) vs model \(.*\)$", examples[0])


def test_a_failure_while_sampling_leaves_no_file(run, capsys, monkeypatch):
    import torch

    from visionmix.models.diffusion_model import DiffusionModel

    calls = []

    def sample_then_fail(self, labels, **kwargs):
        calls.append(len(labels))
        if len(calls) > 1:
            raise RuntimeError("simulated failure in the second batch")
        return torch.zeros(len(labels), 1, 8, 8)

    monkeypatch.setattr(DiffusionModel, "sample", sample_then_fail)
    before = snapshot(run["out"])
    code, err = _call(argv(run, "--num", "4", "--batch-size", "2"), capsys)
    assert code == 1 and err[0] == "error: simulated failure in the second batch"
    assert snapshot(run["out"]) == before and not list(run["out"].glob(".*"))


def test_a_failure_while_writing_leaves_neither_file(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)  # the PNG fails after the npz was written
    with pytest.raises(OSError, match="disk full"):
        sample.write_outputs(str(tmp_path), "samples_2_cfg1.0", np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2))
    assert list(tmp_path.iterdir()) == []


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args,rc,first", [
    (["--help"], 0, "usage: sample.py"),
    (["c.py", "--checkpoint", "/nowhere/x.pth", "--num", "0"], 2, "error: --num must be a positive integer, got 0"),
    (["c.py", "--checkpoint", "/nowhere/x.pth"], 1, "error: checkpoint not found: /nowhere/x.pth"),
])
def test_cli_answers_without_importing_torch(args, rc, first):
    code = (f"import runpy, sys\nsys.argv = ['sample.py'] + {args!r}\n"
            "try:\n    runpy.run_path('tools/sample.py', run_name='__main__')\n"
            "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")
    out = _fresh(code)
    assert out.stdout.strip().splitlines()[-1] == f"exit {rc} False", out.stderr[-2000:]
    assert (out.stdout if rc == 0 else out.stderr).startswith(first)
