import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

diffusers = pytest.importorskip("diffusers")

from visionmix.datasets import ImageFolderDataset, LatentDataset, load_vae  # noqa: E402

pytestmark = [pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "extract_latents.py"
extract = importlib.import_module("visionmix.commands.extract_latents")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("extract")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 8), latent_channels=4, sample_size=16, layers_per_block=1,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8)
    vae.save_pretrained(base / "vae")
    rng = np.random.default_rng(0)
    for c, sizes in (("cat", [(20, 28), (16, 16), (40, 33)]), ("dog", [(18, 24), (30, 17)])):
        (base / "data" / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / "data" / c / f"{i}.png")
    return base


def _run(setup, out, *extra):
    args = ["--data-root", str(setup / "data"), "--image-size", "16", "--vae", str(setup / "vae"),
            "--out", str(out), "--num-workers", "0", "--device", "cpu", *extra]
    assert extract.main(args) == 0
    return out


def _stored(out):
    names = sorted(p.name for p in out.glob("latents_*.npy"))
    return np.concatenate([np.load(out / n) for n in names])


def test_round_trip_through_latent_dataset(setup, tmp_path):
    out = _run(setup, tmp_path / "z", "--batch-size", "2", "--shard-size", "2")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] and meta["count"] == 5 and meta["latent_shape"] == [4, 8, 8]
    assert [s["count"] for s in meta["shards"]] == [2, 2, 1] and meta["classes"] == ["cat", "dog"]
    assert meta["vae_scaling_factor"] == pytest.approx(0.18215)
    ds = LatentDataset(out, random_flip=False)
    images = ImageFolderDataset(setup / "data", 16, random_flip=False)
    assert len(ds) == 5 and [ds[i]["labels"] for i in range(5)] == [0, 0, 0, 1, 1]
    assert ds[0]["inputs"].shape == (4, 8, 8) and ds[0]["inputs"].dtype == torch.float32
    # stored values are exactly latent_dist.sample() with the documented per-image generators, unscaled
    vae = load_vae(setup / "vae")
    with torch.no_grad():
        for index in (0, 4):
            x = images[index]["inputs"][None].float() / 127.5 - 1
            for flip, view in ((0, x), (1, x.flip(-1))):
                dist = vae.encode(view).latent_dist
                expected = dist.sample(generator=extract.image_generator(0, index, flip))[0]
                got = torch.from_numpy(_stored(out)[index, flip])
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
                assert not torch.allclose(got, dist.mean[0])  # a sample, not the mean


def test_latents_do_not_depend_on_batching_or_sharding(setup, tmp_path):
    a = _stored(_run(setup, tmp_path / "a", "--batch-size", "1", "--shard-size", "5"))
    b = _stored(_run(setup, tmp_path / "b", "--batch-size", "3", "--shard-size", "2"))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    c = _stored(_run(setup, tmp_path / "c", "--seed", "1"))
    assert not np.allclose(a, c)


def test_interrupted_run_resumes_and_keeps_finished_shards(setup, tmp_path):
    out = _run(setup, tmp_path / "z", "--shard-size", "2")
    full = _stored(out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "latents_00001.npy").unlink()  # as if killed while encoding shard 1
    (out / "meta.json").write_text(json.dumps(dict(meta, complete=False, shards=[])))
    with pytest.raises(RuntimeError, match="incomplete"):
        LatentDataset(out)
    kept = (out / "latents_00000.npy").stat().st_mtime_ns
    _run(setup, out, "--shard-size", "2")
    assert (out / "latents_00000.npy").stat().st_mtime_ns == kept
    np.testing.assert_allclose(_stored(out), full, rtol=1e-5, atol=1e-6)
    assert len(LatentDataset(out)) == 5
    _run(setup, out, "--shard-size", "2")  # already complete: nothing rewritten
    assert (out / "latents_00000.npy").stat().st_mtime_ns == kept


def test_refuses_to_mix_different_extractions(setup, tmp_path):
    out = _run(setup, tmp_path / "z")
    with pytest.raises(SystemExit, match="different seed"):
        _run(setup, out, "--seed", "3")


def test_float16_storage_and_unconditional_labels(setup, tmp_path):
    out = _run(setup, tmp_path / "z", "--dtype", "float16", "--unconditional")
    assert np.load(out / "latents_00000.npy").dtype == np.float16
    ds = LatentDataset(out)
    assert ds[0]["inputs"].dtype == torch.float32 and {ds[i]["labels"] for i in range(len(ds))} == {-1}


def test_missing_or_wrong_vae_says_what_to_download(setup, tmp_path):
    with pytest.raises(SystemExit, match="sd-vae-ft-ema.*cannot download"):
        _run(setup, tmp_path / "z", "--vae", str(tmp_path / "no_vae"))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(SystemExit, match="UNet2DModel, not an AutoencoderKL"):
        _run(setup, tmp_path / "z", "--vae", str(tmp_path / "unet"))
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text((setup / "vae" / "config.json").read_text())
    with pytest.raises(SystemExit, match="could not load an AutoencoderKL.*sd-vae-ft-ema"):
        _run(setup, tmp_path / "z", "--vae", str(tmp_path / "no_weights"))


def test_command_line_reports_a_missing_data_root(setup, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data-root", str(tmp_path / "nodata"), "--vae",
                           str(setup / "vae"), "--out", str(tmp_path / "z"), "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    assert proc.returncode != 0
    assert "nodata" in proc.stderr and "<class_id>/<image>.JPEG" in proc.stderr
    assert not (tmp_path / "z").exists()
