"""tools/eval_digits.py: scores a checkpoint with the config's sampler unless told otherwise."""
import re

from tests.tools.helpers import load_tool, tiny_digits_config
from visionmix.cli import run_tool
from visionmix.engine import VisionMixRunner

train = load_tool("train")
eval_digits = load_tool("eval_digits")


def test_eval_uses_the_configs_sampler_by_default_and_the_flags_otherwise(tmp_path, capsys):
    cfg = tiny_digits_config(tmp_path / "run", max_iters=2, checkpoint_interval=2)
    cfg.model.sampling.update(sampler="ddpm", steps=2)
    cfg.dump(str(tmp_path / "tiny.yaml"))
    args = train.parse_args([str(tmp_path / "tiny.yaml"), "--work-dir", cfg.work_dir])
    VisionMixRunner.from_cfg(train.apply_args(cfg, args)).train()
    common = [str(tmp_path / "tiny.yaml"), "--checkpoint", str(tmp_path / "run/iter_2.pth"), "--per-class", "2",
              "--out", str(tmp_path / "grids")]

    assert eval_digits.main(common + ["--cfg-scales", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "(ddpm-2;" in out
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+)% \| ([\d.]+) \|$", out, flags=re.M)
    assert [r[:2] for r in rows] == [("8", "1"), ("8", "2")] and all(0 <= float(r[2]) <= 100 for r in rows)
    assert (tmp_path / "grids/digits_cfg1.png").is_file() and (tmp_path / "grids/digits_cfg2.png").is_file()

    assert eval_digits.main(common + ["--cfg-scales", "1", "--sampler", "ddim", "--steps", "3",
                                      "--cfg-options", "model.sampling.cfg_scale=1.0"]) == 0
    assert "(ddim-3;" in capsys.readouterr().out

    # another resolution: sampled at 12x12 (the resampled sin-cos table), scored after downsampling to 8x8
    assert eval_digits.main(common + ["--cfg-scales", "1", "--image-size", "12"]) == 0
    assert re.search(r"^\| 12 \| 1 \| [\d.]+% \|", capsys.readouterr().out, flags=re.M)
    assert (tmp_path / "grids/digits_cfg1_12px.png").is_file()


def test_eval_with_a_missing_checkpoint_names_it(tmp_path, capsys):
    argv = ["configs/quickstart/drwkv_digits8.py", "--checkpoint", str(tmp_path / "none.pth")]
    code = run_tool(eval_digits.main, argv)
    assert code == 1 and "none.pth" in capsys.readouterr().err
