"""visionmix.zoo_cache through the hub: what becomes of a zoo file that fails a check, and what the error says.

A refused file (bad hash, a pickle that would run code, a truncated file, one that is no state dict or does not fit
the row's own config) never stays in the cache and its hash is never recorded, so a good mirror works next time; a
cached file that fails is deleted and the message names the exact paths; a file shipped in the package is never
deleted and the advice is to restore it; a URL or mirror that fails is a one-line error naming what was tried.

Expectations are independent of the code: files and records are looked at on disk, hashes recomputed with hashlib,
and a marker file proves that nothing in a malicious pickle ran. ``TORCH_HOME`` and mirrors are tmp folders; the
only network is an ``http.server`` on 127.0.0.1.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch

from tests.conftest import randomize_
from tests.test_hub import QUICKSTART, TINY, Exploit, build_tiny, make_tiny_zoo, write_table
from visionmix import hub
from visionmix.converters import LayoutError
from visionmix.checkpoint_io import CheckpointError, CheckpointMismatchError

URL = "https://example.invalid/zoo/tiny.pt"  # never fetched: served by a mirror
PACKAGED = Path(hub.__file__).resolve().parent / "zoo" / "digits" / "attention_digits.safetensors"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> Iterator[dict]:
    """The tiny zoo of tests/test_hub.py, a good ``tiny.pt`` (its fp16 state dict pickled) in ``good/`` and an
    empty ``bad/`` mirror folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    hub._VERIFIED.clear()
    made = make_tiny_zoo(tmp_path / "zoo")
    made["cache"] = tmp_path / "torch" / "hub" / "checkpoints" / "visionmix"
    made["target"], made["record"] = made["cache"] / "tiny.pt", made["cache"] / "tiny.pt.sha256"
    made["good"], made["bad"] = tmp_path / "good" / "tiny.pt", tmp_path / "bad" / "tiny.pt"
    made["good"].parent.mkdir(), made["bad"].parent.mkdir()
    torch.save(made["state"], made["good"])
    made["marker"] = tmp_path / "exploited"
    yield made
    hub._VERIFIED.clear()


def row(zoo: dict, sha256: str | None, url: str = URL, **extra) -> None:
    write_table(zoo["folder"], {"tiny": {"config": QUICKSTART, "cfg_options": TINY, "weights": url, "sha256": sha256,
                                         "converter": None, **extra}})


def mirror(monkeypatch, folder: Path) -> None:
    monkeypatch.setenv(hub.MIRROR_ENV, str(folder))


def cached(zoo: dict) -> list[str]:
    return sorted(p.name for p in zoo["cache"].iterdir()) if zoo["cache"].exists() else []


def write_bad(zoo: dict, kind: str) -> type[Exception]:
    """A bad ``tiny.pt`` in the bad mirror; the error loading it must raise."""
    bad = zoo["bad"]
    if kind == "exploit":
        torch.save({"state_dict": zoo["state"], "payload": Exploit(zoo["marker"])}, bad)
        return CheckpointError
    if kind == "truncated":
        bad.write_bytes(zoo["good"].read_bytes()[:-200])
        return CheckpointError
    if kind == "not_a_state_dict":
        torch.save(list(zoo["state"].values()), bad)
        return hub.ZooError
    state = randomize_(build_tiny({"model.backbone.hidden_size": 48})).state_dict()  # another model's weights
    torch.save({k: v.half() for k, v in state.items()}, bad)
    return CheckpointMismatchError


@pytest.mark.parametrize("kind", ["exploit", "truncated", "not_a_state_dict", "misfit"])
def test_a_refused_first_download_is_neither_cached_nor_trusted(zoo, kind, monkeypatch, capsys):
    """Trust on first use records a hash only after the file was read, converted and fitted: a later good mirror
    is then trusted, not refused against the bad file's hash."""
    row(zoo, None)
    error = write_bad(zoo, kind)
    mirror(monkeypatch, zoo["bad"].parent)
    with pytest.raises(error) as err:
        hub.load_pretrained("tiny", table=zoo["table"])
    message = str(err.value)
    assert cached(zoo) == [] and not zoo["marker"].exists()
    assert "nothing was cached" in message and ".partial" not in message and "re-save" not in message
    assert "not pinned" not in capsys.readouterr().err  # no "trusted and recorded" line for a refused file

    mirror(monkeypatch, zoo["good"].parent)
    model, info = hub.load_pretrained("tiny", table=zoo["table"])
    assert info["weights_path"] == str(zoo["target"]) and cached(zoo) == ["tiny.pt", "tiny.pt.sha256"]
    assert zoo["record"].read_text().split()[0] == sha(zoo["good"])
    assert torch.equal(model.state_dict()["backbone.final_layer.linear.weight"],
                       zoo["state"]["backbone.final_layer.linear.weight"].float())


def test_a_first_download_the_converter_refuses_is_not_cached(zoo, monkeypatch):
    row(zoo, None, converter="dit")
    mirror(monkeypatch, zoo["good"].parent)
    with pytest.raises(LayoutError, match=r"not the official DiT key layout.*; nothing was cached"):
        hub.state_dict("tiny", table=zoo["table"])
    assert cached(zoo) == []


def test_download_records_an_unpinned_file_only_once_it_was_read(zoo, monkeypatch):
    row(zoo, None)
    write_bad(zoo, "exploit")
    mirror(monkeypatch, zoo["bad"].parent)
    with pytest.raises(CheckpointError, match=r"refused to unpickle .*system"):
        hub.download("tiny", table=zoo["table"], progress=False)
    assert cached(zoo) == [] and not zoo["marker"].exists()


@pytest.mark.parametrize("recorded", [False, True])
def test_a_cached_file_refused_when_read_is_deleted_with_its_record(zoo, recorded, monkeypatch, capsys):
    """``recorded=False``: a file put in the cache by someone else (first use by us); ``True``: a record made from
    the very file (what an older visionmix wrote before reading it)."""
    row(zoo, None)
    write_bad(zoo, "exploit")
    zoo["cache"].mkdir(parents=True)
    zoo["target"].write_bytes(zoo["bad"].read_bytes())
    if recorded:
        zoo["record"].write_text(f"{sha(zoo['bad'])}  tiny.pt\n")
    with pytest.raises(CheckpointError) as err:
        hub.load_pretrained("tiny", table=zoo["table"])
    deleted = f"{zoo['target']} and {zoo['record']}" if recorded else f"{zoo['target']}"
    assert f"; deleted {deleted}; the next run downloads it again" in str(err.value)
    assert "re-save" not in str(err.value) and "not pinned" not in capsys.readouterr().err
    assert cached(zoo) == [] and not zoo["marker"].exists()

    mirror(monkeypatch, zoo["good"].parent)  # the next run: a good file is trusted, not refused by a stale record
    assert hub.download("tiny", table=zoo["table"], progress=False) == zoo["target"]
    assert zoo["record"].read_text().split()[0] == sha(zoo["good"])


def test_a_cached_file_failing_its_pin_is_deleted_and_downloaded_by_the_next_run(zoo, monkeypatch):
    row(zoo, sha(zoo["good"]))
    mirror(monkeypatch, zoo["good"].parent)
    path = hub.download("tiny", table=zoo["table"], progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(hub.HashMismatchError, match=rf"expected {sha(zoo['good'])} \(pinned") as err:
        hub.load_pretrained("tiny", table=zoo["table"])
    assert str(err.value).endswith(f"corrupt or replaced: deleted {path}; the next run downloads it again")
    assert cached(zoo) == []
    hub.load_pretrained("tiny", table=zoo["table"])
    assert sha(path) == sha(zoo["good"])


def test_a_download_that_differs_from_the_recorded_hash_names_the_record_to_delete(zoo, monkeypatch, capsys):
    row(zoo, None)
    mirror(monkeypatch, zoo["good"].parent)
    hub.download("tiny", table=zoo["table"], progress=False)
    zoo["target"].write_bytes(b"bit rot")
    with pytest.raises(hub.HashMismatchError) as err:
        hub.download("tiny", table=zoo["table"], progress=False)
    assert f"deleted {zoo['target']}; " in str(err.value)
    assert str(err.value).endswith(f"If the upstream file changed on purpose, also delete {zoo['record']}")
    assert cached(zoo) == ["tiny.pt.sha256"]

    torch.save({k: v * 2 for k, v in zoo["state"].items()}, zoo["bad"])  # upstream changed: a valid, other file
    mirror(monkeypatch, zoo["bad"].parent)
    with pytest.raises(hub.HashMismatchError, match=rf"expected {sha(zoo['good'])} \(recorded") as err:
        hub.download("tiny", table=zoo["table"], progress=False)
    assert f"nothing was cached. If the upstream file changed on purpose, delete {zoo['record']}" in str(err.value)
    assert cached(zoo) == ["tiny.pt.sha256"] and zoo["record"].read_text().split()[0] == sha(zoo["good"])
    capsys.readouterr()
    zoo["record"].unlink()  # on purpose, as the message says
    hub.download("tiny", table=zoo["table"], progress=False)
    assert zoo["record"].read_text().split()[0] == sha(zoo["bad"]) and "not pinned" in capsys.readouterr().err


def test_a_pinned_file_that_does_not_fit_the_rows_config_stays_cached(zoo, monkeypatch):
    """Its hash proves it is the row's file: the misfit is the config's to fix, not a reason to download again."""
    write_bad(zoo, "misfit")
    row(zoo, sha(zoo["bad"]))
    mirror(monkeypatch, zoo["bad"].parent)
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        hub.load_pretrained("tiny", table=zoo["table"])
    assert cached(zoo) == ["tiny.pt"]


def packaged_row(zoo: dict, **extra) -> None:
    write_table(zoo["folder"], {"digits": {"config": "configs/quickstart/drwkv_digits8.py", "converter": None,
                                           "weights": str(PACKAGED), "sha256": sha(PACKAGED), **extra}})


@pytest.mark.parametrize("fault", ["hash", "converter"])
def test_a_packaged_file_is_never_deleted_and_the_advice_is_to_restore_it(zoo, fault):
    before = sha(PACKAGED)
    packaged_row(zoo, **({"sha256": "0" * 64} if fault == "hash" else {"converter": "dit"}))
    with pytest.raises(hub.HashMismatchError if fault == "hash" else LayoutError) as err:
        hub.state_dict("digits", table=zoo["table"])
    message = str(err.value)
    rel = "visionmix/zoo/digits/attention_digits.safetensors"
    assert f"{PACKAGED} ships with visionmix and was left as it is: restore it with `git checkout -- {rel}` in a " \
           "checkout, or reinstall the package (`pip install --force-reinstall visionmix`)" in message
    assert "delete" not in message and "download" not in message
    assert PACKAGED.is_file() and sha(PACKAGED) == before


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over http on 127.0.0.1 (404 for what it lacks); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_one_line_download_error(err: pytest.ExceptionInfo, url: str, why: str, via_mirror: bool, zoo) -> None:
    message = str(err.value)
    assert isinstance(err.value, hub.ZooError) and isinstance(err.value, OSError)  # OSError: like urllib's before
    assert "\n" not in message and message.startswith(f"zoo:tiny: could not download {url} (")
    assert why in message and "nothing was cached" in message
    assert (f"{hub.MIRROR_ENV}=" in message) == via_mirror
    assert cached(zoo) == []


def test_a_file_url_mirror_without_the_file_is_a_one_line_error(zoo, tmp_path, monkeypatch):
    row(zoo, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(hub.MIRROR_ENV, empty.as_uri())
    with pytest.raises(hub.DownloadError) as err:
        hub.download("tiny", table=zoo["table"], progress=False)
    assert_one_line_download_error(err, f"{empty.as_uri()}/tiny.pt", "No such file", True, zoo)
    assert f"{hub.MIRROR_ENV}={empty.as_uri()} stands in for {URL}" in str(err.value)


def test_an_http_mirror_serves_the_file_and_a_404_names_the_url(zoo, monkeypatch):
    row(zoo, sha(zoo["good"]), filename="tiny.pt")
    with serve(zoo["good"].parent) as base:
        monkeypatch.setenv(hub.MIRROR_ENV, base)
        assert sha(hub.download("tiny", table=zoo["table"], progress=False)) == sha(zoo["good"])
        zoo["target"].unlink()
        row(zoo, None, url="https://example.invalid/zoo/missing.pt")
        with pytest.raises(hub.DownloadError) as err:
            hub.download("tiny", table=zoo["table"], progress=False)
        assert_one_line_download_error(err, f"{base}/missing.pt", "HTTP 404", True, zoo)
        monkeypatch.delenv(hub.MIRROR_ENV)  # the row's own URL fails the same way, without the mirror's words
        row(zoo, None, url=f"{base}/zoo/missing.pt")
        with pytest.raises(hub.DownloadError) as err:
            hub.download("tiny", table=zoo["table"], progress=False)
        assert_one_line_download_error(err, f"{base}/zoo/missing.pt", "HTTP 404", False, zoo)


def test_a_refused_connection_names_the_url(zoo):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/zoo/tiny.pt"
    row(zoo, None, url=url)
    with pytest.raises(hub.DownloadError) as err:
        hub.download("tiny", table=zoo["table"], progress=False)
    assert_one_line_download_error(err, url, "Connection refused", False, zoo)
