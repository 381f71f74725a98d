"""JIT build cache of the native Bi-WKV op: its key, reuse of a finished build, and a failed build."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch

import visionmix.ops as ops
from visionmix.ops import loader

pytestmark = [pytest.mark.native, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]


def _key(with_cuda: bool = False) -> Dict[str, str]:
    return loader.build_key(with_cuda)


def _change_sources(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    copy = tmp / "csrc"
    shutil.copytree(loader.CSRC, copy)
    with open(copy / "bi_wkv_ops.cpp", "a") as f:
        f.write("\n// one more line\n")
    mp.setattr(loader, "CSRC", copy)


def _change_soabi(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    real = loader.sysconfig.get_config_var
    mp.setattr(loader.sysconfig, "get_config_var",
               lambda name: "cpython-312-x86_64-linux-gnu" if name == "SOABI" else real(name))


CHANGES: Dict[str, Callable[[pytest.MonkeyPatch, Path], None]] = {
    "sources": _change_sources,
    "torch": lambda mp, tmp: mp.setattr(torch, "__version__", "9.9.9"),
    "cxx11_abi": lambda mp, tmp: mp.setattr(torch._C, "_GLIBCXX_USE_CXX11_ABI",
                                            not torch._C._GLIBCXX_USE_CXX11_ABI),
    "cache_tag": lambda mp, tmp: mp.setattr(sys.implementation, "cache_tag", "cpython-399"),
    "soabi": _change_soabi,
    "isa": lambda mp, tmp: mp.setattr(loader, "host_isa", lambda: "x86-64-v2"),
    "compiler": lambda mp, tmp: mp.setenv("CXX", str(tmp / "no-such-c++")),
    "flags": lambda mp, tmp: mp.setattr(loader, "CXX_FLAGS", loader.CXX_FLAGS + ["-O2"]),
}


def test_key_is_stable_and_names_its_inputs():
    key = _key()
    assert key == _key() and loader.key_digest(key) == loader.key_digest(_key())
    assert {"sources", "torch", "cxx11_abi", "cuda", "cache_tag", "soabi", "isa", "compiler"} <= set(key)
    assert loader.build_dir("x", key) == loader.build_dir("x", _key())
    assert "missing" not in key["compiler"] or shutil.which(loader.compiler()) is None


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_key_changes_with_each_input(field, monkeypatch, tmp_path):
    before = _key()
    CHANGES[field](monkeypatch, tmp_path)
    after = _key()
    assert after[field] != before[field]
    assert {name for name in before if before[name] != after[name]} <= {field, "flags"}
    assert loader.build_dir("x", after) != loader.build_dir("x", before)


def test_key_of_a_cuda_build_has_torch_cuda_and_arch(monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    monkeypatch.setattr(loader, "cuda_home", lambda: "/usr/local/cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    cuda = _key(with_cuda=True)
    assert cuda["cuda"].startswith("cuda12.4 8.0") and _key()["cuda"] == "none"
    for setting in (lambda: monkeypatch.setattr(torch.version, "cuda", "13.0"),
                    lambda: monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")):
        setting()
        assert loader.key_digest(_key(with_cuda=True)) != loader.key_digest(cuda)


@pytest.fixture
def fake_builds(monkeypatch, tmp_path) -> List[Path]:
    """A private cache whose "build" writes a stub library; returns the folders built in."""
    monkeypatch.setenv("VISIONMIX_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loader, "_prebuilt", lambda: None)
    monkeypatch.setattr(loader, "wants_cuda", lambda: False)
    built: List[Path] = []

    def build(name: str, folder: Path, with_cuda: bool, verbose: bool) -> types.ModuleType:
        built.append(folder)
        library = folder / f"{name}.so"
        library.write_bytes(b"stub")
        return _stub(name, library)

    def _stub(name: str, path: Path) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__file__ = str(path)
        return module

    monkeypatch.setattr(loader, "_build", build)
    monkeypatch.setattr(loader, "_import_library", _stub)
    return built


def test_a_finished_build_is_reused_and_other_keys_get_their_own_folder(fake_builds, monkeypatch,
                                                                        capsys):
    load = loader.load_native.__wrapped__  # without the per-process memo
    first = load()
    assert len(fake_builds) == 1 and (fake_builds[0] / loader.STAMP).is_file()
    assert capsys.readouterr().err.count("building the native Bi-WKV op") == 1
    assert load().__file__ == first.__file__ and len(fake_builds) == 1
    with monkeypatch.context() as mp:  # another interpreter: other torch
        mp.setattr(torch, "__version__", "9.9.9")
        load()
        load()
    assert len(fake_builds) == 2 and fake_builds[1] != fake_builds[0]
    assert capsys.readouterr().err.count("building") == 1
    load()  # back to the first interpreter: its build is still there
    assert len(fake_builds) == 2 and "building" not in capsys.readouterr().err


def test_a_stamp_of_another_key_is_not_trusted(fake_builds):
    loader.load_native.__wrapped__()
    stamp = fake_builds[0] / loader.STAMP
    stamp.write_text(stamp.read_text().replace('"torch"', '"torch_"'))
    loader.load_native.__wrapped__()
    assert len(fake_builds) == 2


def test_fresh_interpreter_with_a_warm_cache_does_not_build():
    """The real cache: warm it here (a no-op once any test built it), then load in a new process
    whose build function raises."""
    if ops.native_build_error() is not None:
        pytest.skip(f"native build unavailable: {ops.native_build_error()}")
    code = ("import sys; from visionmix.ops import loader\n"
            "def no(*a, **k): raise AssertionError('rebuilt')\n"
            "loader._build = no\n"
            "loader.load_native(); import torch; print(torch.ops.visionmix_native.chunk_size())\n")
    env = {k: v for k, v in os.environ.items() if k != "VISIONMIX_WKV_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(ops.CHUNK) and "building" not in out.stderr


FAKE_CXX = """#!/bin/sh
case "$1" in --version|-dumpfullversion|-dumpversion|-v|-E) exec c++ "$@";; esac
echo "bi_wkv_fake.cpp:3:5: error: simulated compiler failure" >&2
echo "bi_wkv_fake.cpp:9:1: error: a second one" >&2
exit 1
"""


def test_a_failing_compiler_says_why_in_one_line_and_falls_back(monkeypatch, tmp_path, capsys):
    if shutil.which("c++") is None or shutil.which("ninja") is None:
        pytest.skip("needs c++ and ninja")
    cxx = tmp_path / "fake-c++"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("VISIONMIX_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VISIONMIX_WKV_BACKEND", raising=False)
    monkeypatch.setattr(loader, "_prebuilt", lambda: None)
    monkeypatch.setattr(loader, "wants_cuda", lambda: False)
    monkeypatch.setattr(loader, "load_native", loader.load_native.__wrapped__)
    for name, value in (("_native_tried", False), ("_native", None), ("_native_error", None),
                        ("_warned", False)):
        monkeypatch.setattr(ops, name, value)
    with pytest.warns(RuntimeWarning, match="simulated compiler failure.*fallback"):
        assert ops.wkv_backend() == "torch"
    error = ops.native_build_error()
    assert error.startswith("native Bi-WKV op build failed: bi_wkv_fake.cpp:3:5: error: simulated")
    assert "\n" not in error and "more errors" in error and "full log: " in error
    log = Path(error.split("full log: ")[1].rstrip(")"))
    assert "a second one" in log.read_text()
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("visionmix:")]
    assert len(said) == 2 and "building the native Bi-WKV op" in said[0] and error in said[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = torch.randn(1, 5, 3)
        torch.testing.assert_close(ops.bi_wkv(torch.ones(3), torch.zeros(3), k, k),
                                   ops.bi_wkv_dense(torch.ones(3), torch.zeros(3), k, k))


def test_summary_without_compiler_errors_is_the_last_line():
    assert loader.summarise_build_error("Ninja is required to load C++ extensions") == \
        "Ninja is required to load C++ extensions"
    assert loader.summarise_build_error("") == "no output"
