"""tools/convert.py: official file in, visionmix state dict out (safetensors or .pt), checked, atomic, short errors."""
import argparse
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.converters.helpers import F64, ROOT, backbone_options, dit_forward, dit_shapes, official_state
from tests.converters.test_drwkv import tiny_official as tiny_drwkv
from tests.converters.test_loading import _Payload
from tests.tools.helpers import load_tool, tool_env
from visionmix import build_model
from visionmix.cli import run_tool
from visionmix.config import load_config

convert_tool = load_tool("convert")
DIT = "configs/dit/dit_xl2_in256.py"
TINY = dict(input_size=8, hidden_size=32, depth=2, num_heads=4, num_classes=10)
TINY_OPTIONS = [f"{k}={v}" for k, v in backbone_options(**TINY).items()]


@pytest.fixture(scope="module")
def dit_file(tmp_path_factory):
    official = official_state(dit_shapes(depth=2, hidden=32, patch=2, in_channels=4, grid=4, num_classes=10))
    path = tmp_path_factory.mktemp("official") / "DiT-tiny.pt"
    torch.save(official, path)
    return path, official


def call(argv, capsys):
    code = run_tool(convert_tool.main, [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_round_trip_to_safetensors(dit_file, tmp_path, capsys):
    path, official = dit_file
    out = tmp_path / "zoo" / "dit.safetensors"
    code, stdout, err = call(["dit", path, out, "--config", DIT, "--cfg-options", *TINY_OPTIONS], capsys)
    assert code == 0, err
    assert "loads into configs/dit/dit_xl2_in256.py (strict)" in stdout
    assert [p.name for p in out.parent.iterdir()] == ["dit.safetensors"]  # no temporary file left behind
    model = build_model(load_config(ROOT / DIT, backbone_options(**TINY)).model).double().eval()
    model.load_state_dict(load_file(str(out)), strict=True)
    x, t, y = torch.randn(2, 4, 8, 8, dtype=F64), torch.tensor([5, 800]), torch.tensor([1, 10])
    torch.testing.assert_close(model.backbone(x, t, y), dit_forward(official, x, t, y, heads=4, patch=2),
                               rtol=1e-10, atol=1e-10)


def test_the_script_runs_standalone():
    run = subprocess.run([sys.executable, "tools/convert.py", "--help"], cwd=ROOT, env=tool_env(),
                         capture_output=True, text=True)
    assert run.returncode == 0 and "--config" in run.stdout


def test_training_pickle_to_a_plain_state_dict(tmp_path, capsys):
    ema = tiny_drwkv(3, 0)
    src = tmp_path / "0004000.pt"
    torch.save({"model": ema, "ema": ema, "opt": {}, "args": argparse.Namespace(model="DRWKV-L/2")}, src)
    out = tmp_path / "drwkv.pt"
    code, stdout, err = call(["drwkv", src, out, "--config", "configs/drwkv/drwkv_l2_celeba64.py", "--cfg-options",
                              "model.backbone.input_size=8", "model.backbone.hidden_size=16", "model.backbone.depth=3"],
                             capsys)
    assert code == 0, err
    state = torch.load(out, weights_only=True)  # a plain state dict: what tools/sample.py --checkpoint reads
    assert torch.equal(state["backbone.in_blocks.0.ln0.weight"], ema["in_blocks.0.ln0.weight"])


def test_a_config_the_weights_do_not_fit_writes_nothing(dit_file, tmp_path, capsys):
    out = tmp_path / "dit.pt"
    code, _, err = call(["dit", dit_file[0], out, "--config", DIT], capsys)  # the XL/2 config, a tiny checkpoint
    assert code == 1
    assert "does not load into configs/dit/dit_xl2_in256.py" in err and "converted (32, 4, 2, 2) vs model" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_refused_pickle_writes_nothing_and_runs_nothing(tmp_path, capsys):
    marker, src = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"ema": tiny_drwkv(3, 0), "args": _Payload(marker)}, src)
    code, _, err = call(["drwkv", src, tmp_path / "out.pt"], capsys)
    assert code == 1 and "refused to unpickle" in err
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("argv, code, message", [
    (["dot", "IN", "x.pt"], 2, "unknown source 'dot'; known sources: dit, sit, dico, uvit, drwkv"),
    (["dit", "IN", "x.bin"], 2, "choose a file name ending in .safetensors, .pt, .pth"),
    (["dit", "IN", "x.pt", "--cfg-options", "a=1"], 2, "pass --config too"),
    (["dit", "nowhere/DiT-XL-2-256x256.pt", "x.pt"], 1, "checkpoint not found: " + os.path.abspath("nowhere")),
])
def test_bad_arguments_are_one_line_errors(argv, code, message, dit_file, tmp_path, capsys):
    argv = [a.replace("IN", str(dit_file[0])) if a == "IN" else a for a in argv]
    argv = [str(tmp_path / a) if a.endswith((".pt", ".bin")) and "/" not in a else a for a in argv]
    got, _, err = call(argv, capsys)
    assert got == code and message in err



def _not_a_checkpoint(path):
    if path.suffix == ".dir":
        path.mkdir()
    elif path.name == "truncated.pt":  # a zip checkpoint cut short
        torch.save({"w": torch.zeros(64)}, path)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes({"notes.txt": b"hello, this is not a checkpoint\n", "empty.pt": b"",
                          "noise.pth": bytes(range(7, 250, 3)) * 4}[path.name])
    return path


EXPECTED = r"; expected an official \.pt / \.pth / \.safetensors checkpoint$"
NOT_CHECKPOINTS = [  # input file, first stderr line (regex, {path} is the file)
    ("notes.txt", r"error: {path}: not a checkpoint \(neither a zip-format torch file nor a pickle\): it starts with "
                  r"b'hell'" + EXPECTED),
    ("noise.pth", r"error: {path}: not a checkpoint \(neither a zip-format torch file nor a pickle\): it starts with "
                  r"b'\\x07\\n\\r\\x10'" + EXPECTED),
    ("empty.pt", r"error: {path}: not a checkpoint: the file is empty \(0 bytes\)" + EXPECTED),
    ("truncated.pt", r"error: {path}: not a readable checkpoint \(truncated or corrupt\?\): RuntimeError: "
                     r"PytorchStreamReader failed reading zip archive: failed finding central directory$"),
    ("folder.dir", r"error: {path}: a directory, not a checkpoint file" + EXPECTED),
]


@pytest.mark.parametrize("name, first", NOT_CHECKPOINTS, ids=[row[0] for row in NOT_CHECKPOINTS])
def test_an_input_that_is_not_a_checkpoint_is_named(name, first, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)
    src = _not_a_checkpoint(tmp_path / name)
    code, _, err = call(["dit", src, tmp_path / "out.pt"], capsys)
    assert code == 1, err
    assert re.match(first.format(path=re.escape(str(src))), err.splitlines()[0]), err
    assert not (tmp_path / "out.pt").exists()


def test_a_text_file_as_a_real_command_line(tmp_path):
    src = _not_a_checkpoint(tmp_path / "notes.txt")
    run = subprocess.run([sys.executable, "tools/convert.py", "dit", str(src), str(tmp_path / "out.pt")], cwd=ROOT,
                         env=tool_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.splitlines()[0].startswith(f"error: {src}: not a checkpoint (neither a zip-format torch file")


class Notes:
    """A harmless object a training script might pickle beside its weights (not on the allowed list)."""

    def __init__(self, text):
        self.text = text


def test_a_pickle_with_other_objects_converts_only_with_trust_checkpoint(dit_file, tmp_path, capsys):
    _, official = dit_file
    src = tmp_path / "with_notes.pt"
    torch.save({"model": official, "notes": Notes("lr was 1e-4")}, src)
    out = tmp_path / "dit.pt"
    code, _, err = call(["dit", src, out], capsys)
    assert code == 1 and re.search(r"refused to unpickle the class/function .*Notes.*pass --trust-checkpoint", err)
    assert not out.exists()
    code, _, err = call(["dit", src, out, "--trust-checkpoint"], capsys)
    assert code == 0, err
    assert torch.equal(torch.load(out, weights_only=True)["backbone.x_embedder.proj.weight"],
                       official["x_embedder.proj.weight"])
