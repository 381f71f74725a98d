"""A work dir holds one run at a time, survives a full disk, and keeps the run's scalars where people look for them."""
from __future__ import annotations

import errno
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.helpers import ROOT, load_tool, recorded, run_tools, tiny_digits_config, write_config
from visionmix.checkpoint_io import read_checkpoint
from visionmix.engine.work_dir_lock import LOCK_NAME

pytestmark = [pytest.mark.slow]

train = load_tool("train")


def tiny(tmp_path: Path, max_iters: int = 2, interval: int = 1, **extra) -> Path:
    cfg = tiny_digits_config(tmp_path / "unused", max_iters=max_iters, checkpoint_interval=interval)
    for key, value in extra.items():
        cfg[key] = value
    return write_config(cfg, tmp_path / "tiny.py")


def test_two_runs_started_into_one_work_dir_leave_one_consistent_run(tmp_path):
    config, work = tiny(tmp_path, max_iters=30, interval=10), tmp_path / "work"
    argv = [str(config), "--work-dir", str(work)]
    done = run_tools({"a": ["tools/train.py", *argv], "b": ["tools/train.py", *argv]}, cwd=ROOT, parallel=2)
    codes = sorted(p.returncode for p in done.values())
    assert codes[0] == 0 and codes[1] != 0, {n: p.stderr[-2000:] for n, p in done.items()}
    loser = next(p for p in done.values() if p.returncode)
    assert re.match(r"error: work dir .*work (is in use by another run \(PID \d+|already holds checkpoints)",
                    loser.stderr.strip().splitlines()[0]), loser.stderr
    runs = [p for p in work.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name)]
    assert len(runs) == 1  # one log folder: the loser started no Runner
    assert sorted(p.name for p in work.glob("*.pth*")) == ["iter_10.pth", "iter_20.pth", "iter_30.pth"]
    assert Path((work / "last_checkpoint").read_text().strip()) == work / "iter_30.pth"
    assert read_checkpoint(str(work / "iter_30.pth"))["meta"]["iter"] == 30
    assert not (work / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    work = tmp_path / "work"
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier",
                                              "command": "python tools/train.py x.py"}))
    assert train.main([str(tiny(tmp_path)), "--work-dir", str(work)]) in (0, None)
    assert f"warning: took over the lock of a run that is gone (PID {dead.pid} on" in capsys.readouterr().err
    assert (work / "iter_2.pth").is_file() and not (work / LOCK_NAME).exists()


def test_a_full_disk_keeps_the_last_good_checkpoint_and_the_next_run_resumes(tmp_path, monkeypatch, capsys):
    import mmengine.runner.runner as mm_runner

    real_save, calls = mm_runner.save_checkpoint, []

    def fill_the_disk(checkpoint, filename, **kwargs):
        calls.append(filename)
        if len(calls) == 1:
            return real_save(checkpoint, filename, **kwargs)
        with open(filename, "wb") as f:  # what a full disk leaves: the first bytes, then ENOSPC
            f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    config, work = tiny(tmp_path, max_iters=2, interval=1), tmp_path / "work"
    monkeypatch.setattr(mm_runner, "save_checkpoint", fill_the_disk)
    with pytest.raises(OSError, match="No space left on device"):
        train.main([str(config), "--work-dir", str(work)])
    monkeypatch.setattr(mm_runner, "save_checkpoint", real_save)
    assert calls[1].endswith("iter_2.pth.partial")
    assert sorted(p.name for p in work.glob("*.pth*")) == ["iter_1.pth"]  # no half file beside the good one
    assert read_checkpoint(str(work / "iter_1.pth"))["meta"]["iter"] == 1
    (work / "iter_2.pth.partial").write_bytes(b"what a kill -9 mid-write leaves")
    capsys.readouterr()
    assert train.main([str(config), "--work-dir", str(work), "--resume"]) in (0, None)
    err = capsys.readouterr().err
    assert "removed iter_2.pth.partial, a checkpoint an earlier run did not finish writing" in err
    assert "Logging error" not in err and sorted(p.name for p in work.glob("*.pth*")) == ["iter_1.pth", "iter_2.pth"]


def test_too_little_free_space_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(OSError, match=r"the disk holding work dir .*work has 5 MiB free; this run needs about "
                                      r"64 MiB for its checkpoints"):
        train.main([str(tiny(tmp_path)), "--work-dir", str(tmp_path / "work")])
    assert not (tmp_path / "work").exists()


def test_training_scalars_go_to_vis_data_and_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_digits_config(tmp_path / "unused", max_iters=3, checkpoint_interval=3)
    cfg.custom_hooks.append(dict(type="LossRecorder", path=str(tmp_path / "losses.jsonl")))
    config = write_config(cfg, tmp_path / "tiny.py")
    assert train.main([str(config), "--work-dir", str(tmp_path / "work"), "--tensorboard"]) in (0, None)
    vis = next((tmp_path / "work").glob("*/vis_data"))
    rows = [json.loads(line) for line in (vis / "scalars.json").read_text().splitlines()]
    losses = recorded(tmp_path / "losses.jsonl")  # what the model returned, recorded by a hook of the test's own
    logged = {row["step"]: row["loss"] for row in rows if "loss" in row}
    assert sorted(logged) == [1, 2, 3]
    for step in (1, 2, 3):  # the logger smooths over its window: here every iteration so far
        mean = sum(losses[i] for i in range(1, step + 1)) / step
        assert logged[step] == pytest.approx(mean, abs=1e-4)
    events = EventAccumulator(str(vis))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([logged[s] for s in (1, 2, 3)], abs=1e-4)


def test_two_runs_in_one_process_and_one_second_keep_their_own_logs_and_scalars(tmp_path, monkeypatch):
    """mmengine names its process-wide logger, message hub and visualiser after <config>_<second>: the second run
    must not write into the first run's log file or scalars (a study trains many configs in one process)."""
    import time
    import types

    import mmengine.runner.runner as mm_runner

    frozen = time.time()
    clock = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    clock.time = lambda: frozen
    monkeypatch.setattr(mm_runner, "time", clock)
    config = tiny(tmp_path, max_iters=2, interval=2)
    for name in ("a", "b"):
        assert train.main([str(config), "--work-dir", str(tmp_path / name)]) in (0, None)
    names = []
    for name in ("a", "b"):
        (log,) = (tmp_path / name).glob("*/*.log")
        scalars = [json.loads(line) for line in next((tmp_path / name).glob("*/vis_data/scalars.json")).open()]
        assert [row["step"] for row in scalars if "loss" in row] == [1, 2]  # its own two iterations, no more
        assert log.read_text().count("Iter(train) [2/2]") == 1
        names.append(read_checkpoint(str(tmp_path / name / "iter_2.pth"))["meta"]["experiment_name"])
    assert names[0] != names[1]  # <config>_<second>, then _2, _3, ... for later runs in that second
