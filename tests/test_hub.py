"""visionmix.hub: zoo tables, verified downloads (pinned and trust-on-first-use), pickle-free loading, load_model and
the mmengine ``zoo:`` scheme.

Every test writes its own table in tmp around a tiny digits model (the quickstart recipe shrunk to 32 wide, 3 deep)
whose random weights are saved as fp16 safetensors; hashes are recomputed here with hashlib, weights compared with
what was saved. Downloads go to ``TORCH_HOME`` in tmp through ``file://`` URLs: no network, the real cache untouched.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

import visionmix
from tests.conftest import randomize_
from visionmix import converters, hub
from visionmix.config import load_config
from visionmix.checkpoint_io import CheckpointError, CheckpointMismatchError
from visionmix.engine.checkpoint import check_config_checkpoint

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = "configs/quickstart/drwkv_digits8.py"
TINY = {"model.backbone.hidden_size": 32, "model.backbone.depth": 3, "model.sampling.steps": 2}
URL = "https://example.invalid/zoo/tiny.safetensors"  # never fetched: tests mirror it or use file:// URLs


def build_tiny(options: dict | None = None) -> torch.nn.Module:
    return visionmix.build_model(load_config(ROOT / QUICKSTART, {**TINY, **(options or {})}).model)


def make_tiny_zoo(folder: Path, **row) -> dict:
    """``folder/files/tiny.safetensors`` (random fp16 weights of the tiny model) and ``folder/model_zoo.yml`` with one
    row ``tiny`` (pinned, package-relative weights unless ``row`` says otherwise). Returns the table path, the file,
    its sha256 and the saved state dict."""
    (folder / "files").mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in randomize_(build_tiny()).state_dict().items()}
    weights = folder / "files" / "tiny.safetensors"
    save_file(state, str(weights))
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    table = write_table(folder, {"tiny": {"config": QUICKSTART, "cfg_options": TINY, "sha256": sha, "converter": None,
                                          "weights": "files/tiny.safetensors", **row}})
    return {"table": table, "weights": weights, "sha256": sha, "state": state, "folder": folder}


def write_table(folder: Path, rows: dict) -> Path:
    path = folder / "model_zoo.yml"
    path.write_text(yaml.safe_dump({"models": rows}))
    return path


def assert_weights(model: torch.nn.Module, state: dict) -> None:
    got = model.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v.float()), k


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    hub._VERIFIED.clear()
    made = make_tiny_zoo(tmp_path / "zoo")
    made["cache"] = tmp_path / "torch" / "hub" / "checkpoints" / "visionmix"
    return made


def url_row(zoo: dict, sha256: str | None, url: str = URL) -> Path:
    return write_table(zoo["folder"], {"tiny": {"config": QUICKSTART, "cfg_options": TINY, "weights": url,
                                                "sha256": sha256, "converter": None}})


def test_table_lists_rows_and_unknown_names_get_a_suggestion(zoo):
    assert hub.list_models(zoo["table"]) == ["tiny"]
    info = hub.model_info("zoo:tiny", table=zoo["table"])
    assert info["name"] == "tiny" and info["sha256"] == zoo["sha256"]
    unknown = r"unknown zoo model 'tinny' \(did you mean 'tiny'\?\); known: tiny"
    with pytest.raises(hub.UnknownModelError, match=unknown):
        hub.model_info("tinny", table=zoo["table"])
    assert hub.table_path() == Path(hub.__file__).parent / "zoo" / "model_zoo.yml"


def test_load_pretrained_loads_the_fp16_file_into_the_fp32_model(zoo):
    model, info = hub.load_pretrained("tiny", table=zoo["table"])
    assert_weights(model, zoo["state"])
    assert not model.training
    assert info["weights_path"] == str(zoo["weights"]) and info["config_path"] == str(ROOT / QUICKSTART)
    with pytest.raises(CheckpointMismatchError, match=r"zoo:tiny .* does not fit .*drwkv_digits8\.py: \d+ of"):
        hub.load_pretrained("tiny", table=zoo["table"], cfg_options={"model.backbone.hidden_size": 48})


@pytest.mark.parametrize("kind", ["file_url", "folder"])
def test_a_mirror_serves_the_urls_basename_into_the_torch_hub_cache(zoo, kind, monkeypatch):
    url_row(zoo, zoo["sha256"])
    folder = zoo["weights"].parent
    monkeypatch.setenv(hub.MIRROR_ENV, folder.as_uri() if kind == "file_url" else str(folder))
    path = hub.download("tiny", table=zoo["table"], progress=False)
    assert path == zoo["cache"] / "tiny.safetensors"
    assert path.read_bytes() == zoo["weights"].read_bytes()
    assert sorted(p.name for p in zoo["cache"].iterdir()) == ["tiny.safetensors"]  # no partial file, no record
    model, info = hub.load_pretrained("tiny", table=zoo["table"])
    assert_weights(model, zoo["state"])
    assert info["weights_path"] == str(path)


def test_a_mirror_without_the_file_names_both(zoo, tmp_path, monkeypatch):
    url_row(zoo, zoo["sha256"])
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"{hub.MIRROR_ENV}=.* has no tiny\.safetensors"):
        hub.download("tiny", table=zoo["table"])


def test_a_hash_mismatch_names_both_hashes_and_caches_nothing(zoo):
    wrong = "0" * 64
    url_row(zoo, wrong, url=zoo["weights"].as_uri())
    with pytest.raises(hub.HashMismatchError) as err:
        hub.download("tiny", table=zoo["table"], progress=False)
    assert zoo["sha256"] in str(err.value) and wrong in str(err.value) and "nothing was cached" in str(err.value)
    assert not zoo["cache"].exists() or list(zoo["cache"].iterdir()) == []


def test_an_unpinned_row_is_trusted_on_first_use_then_checked(zoo, capsys):
    url_row(zoo, None, url=zoo["weights"].as_uri())
    path = hub.download("tiny", table=zoo["table"], progress=False)
    err = capsys.readouterr().err
    assert zoo["sha256"] in err and "not pinned" in err
    record = path.with_name("tiny.safetensors.sha256")
    assert record.read_text().split()[0] == zoo["sha256"]
    assert hub.download("tiny", table=zoo["table"]) == path and capsys.readouterr().err == ""  # said once
    with open(path, "ab") as f:
        f.write(b"bit rot")
    with pytest.raises(hub.HashMismatchError, match=r"expected .*recorded at its first download") as err:
        hub.download("tiny", table=zoo["table"])
    assert f"deleted {path}; the next run downloads it again" in str(err.value)
    assert f"If the upstream file changed on purpose, also delete {record}" in str(err.value)
    assert not path.exists() and record.read_text().split()[0] == zoo["sha256"]  # reported, not downloaded again
    assert hub.download("tiny", table=zoo["table"], progress=False) == path  # the next run: checked by the record
    assert path.read_bytes() == zoo["weights"].read_bytes() and capsys.readouterr().err == ""


def test_a_pinned_cached_file_that_changed_is_an_error(zoo):
    url_row(zoo, zoo["sha256"], url=zoo["weights"].as_uri())
    path = hub.download("tiny", table=zoo["table"], progress=False)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(hub.HashMismatchError, match=rf"expected {zoo['sha256']} \(pinned"):
        hub.load_pretrained("tiny", table=zoo["table"])


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_before_it_runs(zoo, tmp_path):
    marker = tmp_path / "exploited"
    evil = zoo["folder"] / "files" / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": Exploit(marker)}, evil)
    write_table(zoo["folder"], {"evil": {"config": QUICKSTART, "cfg_options": TINY, "weights": "files/evil.pt",
                                         "sha256": None, "converter": None}})
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to unpickle the class/function \S*system") as err:
        hub.load_pretrained("evil", table=zoo["table"])
    assert not marker.exists()
    assert evil.is_file() and f"{evil} is the row's own file" in str(err.value)  # a row's local file: never deleted


def test_a_release_pickle_goes_through_its_converter(zoo, tmp_path, monkeypatch):
    """An official-style training pickle (an argparse.Namespace beside the weights, other key names) loads with the
    Namespace allowed and the row's converter applied; a stand-in converter records what it was given."""
    release = {"args": argparse.Namespace(model="tiny"), "ema": {k.replace("backbone.", "net."): v.float()
                                                                 for k, v in zoo["state"].items()}}
    torch.save(release, zoo["folder"] / "files" / "release.pt")
    calls = []

    def convert(source, checkpoint):
        calls.append((source, checkpoint["args"]))
        return {k.replace("net.", ""): v for k, v in checkpoint["ema"].items()}  # backbone-level keys

    monkeypatch.setattr(converters, "convert", convert)
    write_table(zoo["folder"], {"rel": {"config": QUICKSTART, "cfg_options": TINY, "weights": "files/release.pt",
                                        "sha256": None, "converter": "fake"}})
    model, _ = hub.load_pretrained("rel", table=zoo["table"])
    assert_weights(model, zoo["state"])
    assert calls == [("fake", argparse.Namespace(model="tiny"))]


def test_an_official_dit_training_pickle_downloads_converts_and_computes_dits_forward(zoo):
    """End to end with the real ``dit`` converter: a tiny DiT training checkpoint (EMA weights, the training
    ``args``) behind a ``file://`` URL; the zoo model's output is DiT's forward written out on those weights."""
    from tests.converters.helpers import dit_forward, dit_shapes, official_state

    ema = official_state(dit_shapes(depth=2, hidden=32, patch=2, in_channels=4, grid=4, num_classes=10))
    release = zoo["folder"] / "files" / "DiT-tiny.pt"
    torch.save({"model": {k: v.float() * 0 for k, v in ema.items()}, "ema": {k: v.float() for k, v in ema.items()},
                "args": argparse.Namespace(model="DiT-XL/2")}, release)
    options = {f"model.backbone.{k}": v for k, v in dict(input_size=8, hidden_size=32, depth=2, num_heads=4,
                                                         num_classes=10).items()}
    write_table(zoo["folder"], {"dit_tiny": {"config": "configs/dit/dit_xl2_in256.py", "cfg_options": options,
                                             "weights": release.as_uri(), "sha256": None, "converter": "dit"}})
    model, info = hub.load_pretrained("dit_tiny", table=zoo["table"])
    assert info["weights_path"] == str(zoo["cache"] / "DiT-tiny.pt")
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([3, 900]), torch.tensor([1, 10])
    expected = dit_forward({k: v.float().double() for k, v in ema.items()}, x.double(), t, y, heads=4, patch=2)
    torch.testing.assert_close(model.backbone(x, t, y).double(), expected, rtol=1e-4, atol=1e-4)


def test_load_model_takes_zoo_names_or_a_local_checkpoint_with_its_config(zoo, tmp_path):
    model, info = hub.load_model("zoo:tiny", table=zoo["table"])
    assert_weights(model, zoo["state"])
    assert info["name"] == "tiny"
    ckpt = tmp_path / "run" / "iter_1.pth"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {f"module.{k}": v.float() for k, v in zoo["state"].items()}}, ckpt)
    config = tmp_path / "tiny.py"
    load_config(ROOT / QUICKSTART, TINY).dump(str(config))
    model, info = hub.load_model(str(ckpt), str(config))
    assert_weights(model, zoo["state"])
    assert info == {"name": None, "config_path": str(config), "weights_path": str(ckpt)}
    with pytest.raises(ValueError, match=r"iter_1\.pth is a local checkpoint: also name the config"):
        hub.load_model(str(ckpt))


def test_before_load_runs_before_anything_is_downloaded(zoo):
    url_row(zoo, zoo["sha256"], url=zoo["weights"].as_uri())

    def refuse(model):
        raise RuntimeError(f"refused a model with {model.backbone.num_classes} classes")

    with pytest.raises(RuntimeError, match="refused a model with 10 classes"):
        hub.load_model("zoo:tiny", table=zoo["table"], before_load=refuse)
    assert not zoo["cache"].exists()


def test_zoo_names_load_through_mmengines_checkpoint_loader(zoo, monkeypatch):
    from mmengine.runner.checkpoint import load_checkpoint

    monkeypatch.setattr(hub, "TABLE", zoo["table"])
    model = build_tiny()
    load_checkpoint(model, "zoo:tiny", map_location="cpu", strict=True)
    assert_weights(model, zoo["state"])
    cfg = load_config(ROOT / QUICKSTART, {**TINY, "load_from": "zoo:tiny"})
    check_config_checkpoint(cfg)  # fits: no error
    cfg.model.backbone.hidden_size = 48
    with pytest.raises(CheckpointMismatchError, match=r"zoo:tiny does not fit"):
        check_config_checkpoint(cfg)


def test_config_paths_resolve_to_the_checkout_and_say_where_they_looked():
    assert hub.resolve_config(QUICKSTART) == ROOT / QUICKSTART
    with pytest.raises(FileNotFoundError, match=r"zoo config configs/none\.py not found; looked at .*configs/none\.py"):
        hub.resolve_config("configs/none.py")


@pytest.mark.slow  # a real pip install: ~15 s
def test_a_plain_install_ships_configs_and_zoo_files_that_load(tmp_path):
    """``pip install --target`` (not editable): configs and zoo files are inside the package, a row's config resolves
    to the installed copy (no checkout around) and loads, relative ``read_base()`` imports included."""
    source, target = tmp_path / "src", tmp_path / "site"  # a copy: setuptools' build/ stays out of the checkout
    skip = shutil.ignore_patterns("__pycache__", "*.so", "build", "*.egg-info")
    for part in ("visionmix", "ops", "configs"):
        shutil.copytree(ROOT / part, source / part, ignore=skip)
    shutil.copy(ROOT / "setup.py", source / "setup.py")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-compile", "--target", str(target), str(source)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "VISIONMIX_BUILD_OPS": "0"})
    assert pip.returncode == 0, pip.stderr[-3000:]
    package = target / "visionmix"
    shipped = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.py"))
    assert shipped and all((package / "configs" / p).is_file() for p in shipped)
    patterns = ("zoo/*.yml", "zoo/digits/*.safetensors", "zoo/digits/*.png")
    zoo_files = [p.relative_to(ROOT / "visionmix") for pattern in patterns for p in (ROOT / "visionmix").glob(pattern)]
    assert Path("zoo/model_zoo.yml") in zoo_files and all((package / p).is_file() for p in zoo_files), zoo_files
    code = ("from pathlib import Path\nimport visionmix, visionmix.hub as hub\n"
            f"assert visionmix.__file__.startswith({str(target)!r}), visionmix.__file__\n"
            f"path = hub.resolve_config({QUICKSTART!r})\n"
            "from visionmix.config import load_config\n"
            f"cfg = load_config(path, {TINY!r})\n"
            f"assert hub.list_models() and hub.table_path() == Path({str(package)!r}) / 'zoo' / 'model_zoo.yml'\n"
            "print(path, cfg.model.backbone.hidden_size, len(cfg.train_dataloader.dataset))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr[-3000:]
    path, width, dataset_keys = out.stdout.split()
    assert path == str(package / "configs" / "quickstart" / "drwkv_digits8.py") and width == "32"
    assert int(dataset_keys) > 0  # the dataset came from _base_/datasets/digits8.py through read_base()
    # the command line of a plain install: its console script, and what a pip user runs with no checkout around
    script = target / "bin" / "visionmix"
    assert script.is_file() and "visionmix.commands" in script.read_text()
    env = {**os.environ, "PYTHONPATH": str(target)}
    listed = subprocess.run([sys.executable, "-m", "visionmix", "zoo", "list"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300, env=env)
    assert listed.returncode == 0 and "drwkv_digits" in listed.stdout.split(), listed.stderr[-2000:]
    sampled = subprocess.run([sys.executable, "-m", "visionmix", "sample", "--checkpoint", "zoo:drwkv_digits",
                              "--num-samples", "2", "--steps", "2"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=300, env=env)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert (tmp_path / "samples" / "drwkv_digits" / "samples_2_cfg1.0.npz").is_file()
