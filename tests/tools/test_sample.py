import subprocess
import sys

import numpy as np

from tests.tools.helpers import ROOT, load_tool, tiny_digits_config
from visionmix.engine import VisionMixRunner

train = load_tool("train")


def test_sample_writes_adm_npz_and_grid_from_a_training_checkpoint(tmp_path):
    cfg = tiny_digits_config(tmp_path / "run", max_iters=2, checkpoint_interval=2)
    cfg.dump(str(tmp_path / "tiny.yaml"))
    args = train.parse_args([str(tmp_path / "tiny.yaml"), "--work-dir", cfg.work_dir])
    VisionMixRunner.from_cfg(train.apply_args(cfg, args)).train()
    out = subprocess.run([sys.executable, str(ROOT / "tools/sample.py"), str(tmp_path / "tiny.yaml"), "--checkpoint",
                          str(tmp_path / "run/iter_2.pth"), "--num", "5", "--batch-size", "2", "--steps", "3",
                          "--sampler", "ddim", "--labels", "3", "7", "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    data = np.load(tmp_path / "s/samples_5_cfg1.0.npz")
    assert data["arr_0"].shape == (5, 8, 8, 3) and data["arr_0"].dtype == np.uint8
    assert data["labels"].tolist() == [3, 7, 3, 7, 3]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["samples_5_cfg1.0.npz", "samples_5_cfg1.0.png"]


def test_sample_with_a_missing_checkpoint_says_where_it_looked(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tools/sample.py"), str(ROOT / "configs/quickstart/drwkv_digits8.py"),
                          "--checkpoint", str(tmp_path / "nope.pth")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines()[0] == f"error: checkpoint not found: {tmp_path / 'nope.pth'}"
    assert not (tmp_path / "samples").exists()
