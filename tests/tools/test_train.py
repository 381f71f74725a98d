import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.tools.helpers import ROOT, load_tool, recorded, tiny_digits_config
from visionmix.engine import CheckpointError, NonFiniteLossError

train = load_tool("train")


def run(cfg, *cli):
    args = train.parse_args([str(ROOT / "configs/quickstart/drwkv_digits8.py"), *cli])
    runner = train.build_runner(train.apply_args(cfg, args), args)
    runner.train()
    return runner


def test_killed_and_resumed_run_repeats_the_uninterrupted_loss_sequence(tmp_path):
    straight = tiny_digits_config(tmp_path / "straight")
    straight.custom_hooks.append(dict(type="LossRecorder", path=str(tmp_path / "straight.jsonl")))
    run(straight, "--work-dir", straight.work_dir)

    broken = tiny_digits_config(tmp_path / "broken")
    broken.custom_hooks += [dict(type="LossRecorder", path=str(tmp_path / "broken.jsonl")), dict(type="CrashAt", at=5)]
    with pytest.raises(KeyboardInterrupt):
        run(broken, "--work-dir", broken.work_dir)
    assert (tmp_path / "broken/iter_3.pth").is_file() and not (tmp_path / "broken/iter_6.pth").exists()

    resumed = tiny_digits_config(tmp_path / "broken")
    resumed.custom_hooks.append(dict(type="LossRecorder", path=str(tmp_path / "resumed.jsonl")))
    run(resumed, "--work-dir", resumed.work_dir, "--resume")

    reference, before, after = (recorded(tmp_path / f"{n}.jsonl") for n in ("straight", "broken", "resumed"))
    assert sorted(after) == [4, 5, 6]
    assert [before[i] for i in (1, 2, 3, 4)] == [reference[i] for i in (1, 2, 3, 4)]
    assert [after[i] for i in (4, 5, 6)] == [reference[i] for i in (4, 5, 6)]  # bit-exact
    for name in ("iter_6.pth",):
        a = torch.load(tmp_path / "straight" / name, weights_only=False)["state_dict"]
        b = torch.load(tmp_path / "broken" / name, weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_digits_config(tmp_path / "nan", max_iters=8, checkpoint_interval=2)
    cfg.custom_hooks.append(dict(type="PoisonLossAt", at=4))
    with pytest.raises(NonFiniteLossError, match=r"iteration 4.*Last healthy checkpoint: .*iter_2\.pth"):
        run(cfg, "--work-dir", cfg.work_dir)
    kept = torch.load(tmp_path / "nan/iter_2.pth", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())
    assert not (tmp_path / "nan/iter_4.pth").exists()


def test_resume_from_missing_or_truncated_checkpoint_is_a_clear_error(tmp_path):
    cfg = tiny_digits_config(tmp_path / "run", max_iters=2, checkpoint_interval=2)
    run(cfg, "--work-dir", cfg.work_dir)
    good = tmp_path / "run/iter_2.pth"
    with pytest.raises(FileNotFoundError, match="iter_9.pth.*iter_2.pth"):
        run(tiny_digits_config(tmp_path / "run"), "--work-dir", cfg.work_dir, "--resume", str(tmp_path / "run/iter_9.pth"))
    truncated = tmp_path / "run/truncated.pth"
    truncated.write_bytes(good.read_bytes()[:1000])
    before = good.read_bytes()
    with pytest.raises(CheckpointError, match="truncated or corrupt.*nothing was overwritten"):
        run(tiny_digits_config(tmp_path / "run", max_iters=4), "--work-dir", cfg.work_dir, "--resume", str(truncated))
    assert good.read_bytes() == before and not (tmp_path / "run/iter_4.pth").exists()


def test_checkpoints_are_written_atomically(tmp_path):
    cfg = tiny_digits_config(tmp_path / "atomic", max_iters=2, checkpoint_interval=1)
    run(cfg, "--work-dir", cfg.work_dir)
    names = sorted(p.name for p in (tmp_path / "atomic").glob("*.pth*"))
    assert names == ["iter_1.pth", "iter_2.pth"]  # no .partial left behind


def test_ema_and_samples_are_written(tmp_path):
    cfg = tiny_digits_config(tmp_path / "ema", max_iters=3, checkpoint_interval=3)
    run(cfg, "--work-dir", cfg.work_dir)
    ckpt = torch.load(tmp_path / "ema/iter_3.pth", weights_only=False)
    assert "ema_state_dict" in ckpt and "rng_state" in ckpt
    grid = list((tmp_path / "ema/samples").glob("iter_*.png"))
    assert len(grid) == 1


def latent_folder(root, n=6, shape=(4, 8, 8)):
    """A LatentDataset folder written directly in its documented format."""
    import json

    root.mkdir(parents=True)
    np.save(root / "latents_00000.npy", np.random.randn(n, 2, *shape).astype(np.float32))
    np.save(root / "labels_00000.npy", np.arange(n) % 3)
    meta = dict(format="visionmix-latents", version=1, complete=True, count=n, latent_shape=list(shape),
                dtype="float32", image_size=64, vae="none", vae_scaling_factor=0.18215, seed=0,
                sampling="sample", class_cond=True, classes=["a", "b", "c"], data_root="none", shard_size=n,
                shards=[dict(latents="latents_00000.npy", labels="labels_00000.npy", count=n)])
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def cli(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "tools/train.py"), *args], capture_output=True, text=True, cwd=cwd)


def test_drwkv_without_data_says_where_it_looked_and_how_to_make_latents(tmp_path):
    out = cli(str(ROOT / "configs/drwkv/drwkv_b2_in256.py"), "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
    assert out.returncode == 1
    assert "data/imagenet/latents256" in out.stderr and "visionmix extract-latents" in out.stderr


def test_drwkv_b2_trains_two_iterations_on_a_tiny_latent_folder(tmp_path):
    latents = latent_folder(tmp_path / "latents")
    out = cli(str(ROOT / "configs/drwkv/drwkv_b2_in256.py"), "--work-dir", str(tmp_path / "w"),
              "--data-root", str(latents), "--cfg-options", "train_cfg.max_iters=2", "train_dataloader.batch_size=2",
              "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
              "model.backbone.input_size=8", "model.backbone.depth=3", "default_hooks.logger.interval=1",
              "default_hooks.checkpoint.interval=2", "custom_hooks.sample_grid.interval=100", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "w/iter_2.pth").is_file()
    assert "Iter(train) [2/2]" in out.stdout + out.stderr
