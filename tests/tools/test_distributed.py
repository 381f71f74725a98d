import os
import subprocess
import sys

import pytest
import torch
import yaml

from tests.tools.helpers import ROOT, tiny_digits_config

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_two_process_cpu_ddp_trains_and_ranks_agree(tmp_path):
    cfg = tiny_digits_config(tmp_path / "ddp", max_iters=3, checkpoint_interval=3)
    cfg.custom_hooks.append(dict(type="DumpParams"))
    cfg.dump(str(tmp_path / "ddp.yaml"))
    assert yaml.safe_load((tmp_path / "ddp.yaml").read_text())["custom_hooks"][-1]["type"] == "DumpParams"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29517", str(ROOT / "tools/train.py"), str(tmp_path / "ddp.yaml"), "--launcher", "pytorch",
                          "--work-dir", str(tmp_path / "ddp"), "--verbose",  # a YAML file cannot import plugins:
                          "--cfg-options", "custom_imports.imports=[tests.tools.helpers]"],  # the command line can
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"ddp/params_rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert "Distributed training: True" in out.stdout + out.stderr  # --verbose: the environment dump on the console
    assert (tmp_path / "ddp/iter_3.pth").is_file()
