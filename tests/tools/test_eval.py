"""tools/eval.py end to end on tiny inputs: Inception with random weights (tests/evaluation/test_inception.py), 8x8
images, a 32-wide digits model. Oracles: a batch scored against itself (FID 0, precision = recall = 1), identical
images (IS 1), the bound IS <= samples per split, and for --metrics digits the model-zoo table's own scoring path
(tools/zoo.py: exported fp16 weights loaded into the config's model, then its evaluate)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("torch_fidelity")
import visionmix  # noqa: E402
from tests.conftest import randomize_  # noqa: E402
from tests.evaluation.test_inception import write_random_weights  # noqa: E402
from tests.tools.helpers import ROOT, load_tool  # noqa: E402
from visionmix.cli import run_tool  # noqa: E402
from visionmix.config import load_config  # noqa: E402
from visionmix.evaluation.inception import ENV  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*not the FID Inception weights")  # random weights, on purpose
tool = load_tool("eval")
QUICKSTART = "configs/quickstart/drwkv_digits8.py"
TINY = {"model.backbone.hidden_size": 32, "model.backbone.depth": 3, "model.sampling.steps": 2}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("inception"))


@pytest.fixture(autouse=True)
def inception_env(weights, monkeypatch):
    monkeypatch.setenv(ENV, str(weights))
    monkeypatch.setenv("VISIONMIX_DEBUG", "0")
    return weights


def save_batch(path: Path, images: np.ndarray, **extra) -> Path:
    np.savez(path, arr_0=images, **extra)
    return path


def random_images(n: int, seed: int = 0, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def run(argv, capsys) -> tuple[int, str, str]:
    code = run_tool(tool.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_npz_scored_against_itself_and_against_saved_stats(tmp_path, capsys):
    images = random_images(5)
    samples = save_batch(tmp_path / "samples.npz", images, labels=np.arange(5))
    ref = save_batch(tmp_path / "ref.npz", images)
    code, out, err = run([samples, "--ref", ref, "--splits", "2", "--device", "cpu", "--batch-size", "4",
                          "--save-stats", tmp_path / "stats.npz"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "samples_eval.json").read_text())
    m = record["metrics"]
    assert m["fid"] == pytest.approx(0.0, abs=1e-6)
    assert (m["precision"], m["recall"]) == (1.0, 1.0)
    assert 1.0 <= m["inception_score"] <= 3.0  # KL(p(y|x) || p(y)) <= log(samples per split): 2 and 3 here
    assert record["num_samples"] == 5 and record["image_size"] == [8, 8] and "5 images" in record["reference"]
    assert "| FID (5 samples) | 0.000 |" in out and "| precision (k=3) | 1.0000 |" in out
    assert "Inception Score (2 splits)" in out and "samples_eval.json" in out

    # the saved statistics and features stand in for the images: the same scores without the reference pass
    code, out, err = run([samples, "--ref", tmp_path / "stats.npz", "--metrics", "fid,pr", "--json",
                          tmp_path / "again.json"], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "again.json").read_text())["metrics"]
    assert again["fid"] == pytest.approx(0.0, abs=1e-6) and (again["precision"], again["recall"]) == (1.0, 1.0)

    # identical images: every p(y|x) is the same, IS = 1 exactly; without --ref the default is IS alone
    same = save_batch(tmp_path / "same.npz", np.repeat(images[:1], 4, axis=0))
    code, out, err = run([same, "--splits", "2"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "same_eval.json").read_text())
    assert set(record["metrics"]) == {"inception_score", "inception_score_std"}
    assert record["metrics"]["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("make, args, code, message", [
    (None, [], 1, "samples file not found: .*missing.npz"),
    (lambda p: np.savez(p, images=random_images(2)), [], 1, "has no arr_0 .*its arrays are images"),
    (lambda p: np.savez(p, arr_0=random_images(2).transpose(0, 3, 1, 2)), [], 1, r"uint8 images \(N, H, W, 3\)"),
    (lambda p: np.savez(p, arr_0=random_images(2)), [], 1, "needs at least 10"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--metrics", "fid"], 2, "needs --ref REF.npz"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--metrics", "fid,kid"], 2, "unknown kid"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--metrics", "digits"], 2, "use it alone, with --checkpoint"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--checkpoint", "x.pth"], 2, "not both"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--num", "8"], 2, "only apply with --checkpoint"),
    (lambda p: np.savez(p, arr_0=random_images(4)), ["--ref", "nowhere.npz"], 1, "reference not found"),
    (lambda p: np.savez(p, arr_0=random_images(4), mu=np.zeros(2048), sigma=np.eye(2048)), ["--ref", "SELF"], 1,
     "neither images .* nor features: precision/recall need one"),
    (lambda p: np.savez(p, arr_0=random_images(4), mu=np.zeros(3), sigma=np.eye(3)), ["--ref", "SELF"], 1,
     "3-dimensional, Inception pool3 features 2048"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, make, args, code, message):
    path = tmp_path / "missing.npz"
    if make is not None:
        make(path)
    if "SELF" in args:  # the file is its own reference: a stats-only reference, written without arr_0
        with np.load(path) as data:
            np.savez(tmp_path / "ref.npz", **{k: data[k] for k in data.files if k != "arr_0"})
        args = [str(tmp_path / "ref.npz") if a == "SELF" else a for a in args]
    got, out, err = run([path, *args], capsys)
    first = err.splitlines()[0]
    assert got == code and first.startswith("error: ") and __import__("re").search(message, first), err
    assert not list(tmp_path.glob("*.json"))


def test_missing_inception_weights_fail_before_anything_is_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "none" / "pt_inception-2015-12-05-6726825d.pth"))
    samples = save_batch(tmp_path / "s.npz", random_images(4))
    code, out, err = run([samples, "--splits", "2"], capsys)
    assert code == 1 and "Inception weights not found" in err and "torch-fidelity/releases" in err


def test_neither_samples_nor_checkpoint_is_a_usage_error(capsys):
    code, out, err = run([], capsys)
    assert code == 2 and "give either SAMPLES.npz or --checkpoint" in err


def tiny_model() -> torch.nn.Module:
    return randomize_(visionmix.build_model(load_config(ROOT / QUICKSTART, TINY).model))


def test_local_checkpoint_is_sampled_first_then_scored(tmp_path, capsys):
    pytest.importorskip("visionmix.hub").load_model  # noqa: B018 - the tool loads models through it
    cfg = load_config(ROOT / QUICKSTART, TINY)
    cfg.dump(str(tmp_path / "tiny.py"))
    torch.save(tiny_model().state_dict(), tmp_path / "tiny.pth")
    code, out, err = run(["--checkpoint", tmp_path / "tiny.pth", "--config", tmp_path / "tiny.py", "--num", 4,
                          "--metrics", "is", "--splits", 2, "--out", tmp_path / "s", "--device", "cpu"], capsys)
    assert code == 0, err
    npz = tmp_path / "s" / "samples_4_cfg1.0.npz"
    with np.load(npz) as data:
        assert data["arr_0"].shape == (4, 8, 8, 3) and data["arr_0"].dtype == np.uint8
    record = json.loads((tmp_path / "s" / "samples_4_cfg1.0_eval.json").read_text())
    assert record["num_samples"] == 4 and 1.0 <= record["metrics"]["inception_score"] <= 2.0 + 1e-9

    code, out, err = run(["--checkpoint", tmp_path / "tiny.pth", "--num", 4], capsys)
    assert code == 2 and "--config is required with a local checkpoint" in err
    code, out, err = run(["--checkpoint", tmp_path / "none.pth", "--config", tmp_path / "tiny.py", "--num", 4],
                         capsys)
    assert code == 1 and "checkpoint not found" in err and "none.pth" in err


def test_digits_metrics_reproduce_the_model_zoo_scoring(tmp_path, capsys, monkeypatch):
    hub = pytest.importorskip("visionmix.hub")
    from safetensors.torch import save_file

    files = tmp_path / "zoo"
    files.mkdir()
    save_file({k: v.half().contiguous() for k, v in tiny_model().state_dict().items()}, str(files / "tiny.safetensors"))
    sha = hashlib.sha256((files / "tiny.safetensors").read_bytes()).hexdigest()
    (files / "model_zoo.yml").write_text(yaml.safe_dump({"models": {"tiny": {
        "config": QUICKSTART, "cfg_options": TINY, "weights": "tiny.safetensors", "sha256": sha, "converter": None}}}))
    monkeypatch.setattr(hub, "TABLE", files / "model_zoo.yml")

    code, out, err = run(["--checkpoint", "zoo:tiny", "--metrics", "digits", "--num", 20, "--out", tmp_path / "d"],
                         capsys)
    assert code == 0, err
    got = json.loads((tmp_path / "d" / "digits_eval.json").read_text())
    assert got["samples"] == 20 and got["sampler"] == "ddpm-2" and got["seed"] == 0

    # how tools/zoo.py fills the table: the exported fp16 file into the config's fp32 model, then its evaluate
    zoo = load_tool("zoo")
    model = zoo.load_exported(visionmix.build_model(load_config(ROOT / QUICKSTART, TINY).model),
                              files / "tiny.safetensors")
    quality, _, _ = zoo.evaluate(model, per_class=2)
    for key in ("agreement", "agreement_cfg3"):
        assert round(got["metrics"][key], 4) == quality[key]
    for key in ("frechet", "frechet_cfg3"):
        assert round(got["metrics"][key], 3) == quality[key]
    m = got["metrics"]
    assert f"| {m['agreement']:.1%} | {m['agreement_cfg3']:.1%} | {m['frechet']:.2f} / {m['frechet_cfg3']:.2f} |" \
        in out

    code, out, err = run(["--checkpoint", "zoo:tiny", "--metrics", "digits", "--num", 15], capsys)
    assert code == 2 and "multiple of 10" in err
