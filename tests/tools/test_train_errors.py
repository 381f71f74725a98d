"""Bad input for tools/train.py: each row runs the tool in a subprocess and checks the exit code, the first line
of stderr, and that nothing in the work dirs it was pointed at changed.

The rows share one tiny trained work dir and run concurrently (interpreter start-up dominates each run).
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools.helpers import (ROOT, finish_tools, load_tool, recorded, snapshot, start_tools, tiny_digits_config,
                                 tool_env, write_config)
from visionmix.engine import NonFiniteLossError

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

train = load_tool("train")


@dataclass(frozen=True)
class Row:
    """One bad command line: ``args`` is formatted with the fixture's paths (``{tiny}``, ``{trained}``, ...)."""

    name: str
    args: str
    returncode: int
    first_line: str  # regex the first line of stderr must match
    watched: tuple[str, ...] = ("trained",)  # folders (fixture keys) that must not change
    also: str = ""  # regex somewhere in stderr
    needs: str = ""  # a module the row needs (skipped without it)


ROWS = [
    Row("work dir with checkpoints, no --resume", "{tiny} --work-dir {trained}", 2,
        r"error: work dir .*trained already holds checkpoints.*--resume.*--work-dir"),
    Row("--resume in an empty work dir", "{tiny} --work-dir {empty} --resume", 2,
        r"error: --resume: nothing to resume in .*empty", ("empty",)),
    Row("--resume with a mistyped path", "{tiny} --work-dir {trained} --resume {trained}/iter_9.pth", 1,
        r"error: resume checkpoint not found: .*iter_9\.pth.*iter_2\.pth"),
    Row("last_checkpoint names a deleted file", "{tiny} --work-dir {dangling} --resume", 1,
        r"error: .*last_checkpoint .*points to .*gone\.pth", ("dangling",)),
    Row("missing config file", "{root}/nope.py --work-dir {fresh}", 1,
        r"error: config file not found: .*nope\.py", ("fresh",)),
    Row("checkpoint from another config", "{wide} --work-dir {fresh} --resume {trained}/iter_2.pth", 1,
        r"error: checkpoint .*iter_2\.pth does not fit", ("fresh", "trained"),
        also=r"checkpoint \(32, 1, 2, 2\) vs model \(48, 1, 2, 2\)(.*\n)+.*trained with .*tiny\.py .*hidden_size=32"),
    Row("--resume names a folder without checkpoints", "{tiny} --work-dir {fresh} --resume {empty}", 2,
        r"error: --resume: nothing to resume in .*empty", ("fresh", "empty")),
    Row("--data-root with the digits dataset", "{tiny} --work-dir {fresh} --data-root {empty}", 2,
        r"error: --data-root: .*DigitsDataset", ("fresh", "empty")),
    Row("latents config without its data", "configs/drwkv/drwkv_b2_in256.py --work-dir {fresh} --data-root "
        "{root}/no_latents", 1, r"error: no data at .*no_latents", ("fresh",), also="--data-root"),
    Row("--overwrite with --resume", "{tiny} --work-dir {trained} --resume --overwrite", 2,
        r"error: --overwrite .*--resume"),
    Row("unknown option", "{tiny} --work-dir {trained} --bogus", 2, r"error: unrecognized arguments: --bogus"),
    Row("--cfg-options without =", "{tiny} --work-dir {fresh} --cfg-options train_cfg.max_iters", 2,
        r"error: .*--cfg-options.*KEY=VALUE", ("fresh",)),
    Row("unknown config key", "{tiny} --work-dir {fresh} --cfg-options train_cfgg.max_iters=2", 1,
        r"error: .*train_cfgg", ("fresh",), needs="visionmix.config_check"),
]


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, Path]:
    """Configs and folders the rows point at: a tiny config and one with a wider model, an empty work dir, one
    whose last_checkpoint names a deleted file, and (made by the ``trained`` fixture) a trained one."""
    root = tmp_path_factory.mktemp("train_errors")
    paths = dict(root=root, tiny=root / "tiny.py", wide=root / "wide.py", trained=root / "trained",
                 empty=root / "empty", dangling=root / "dangling")
    write_config(tiny_digits_config(root / "unused", max_iters=2, checkpoint_interval=2), paths["tiny"])
    wide = tiny_digits_config(root / "unused", max_iters=2, checkpoint_interval=2)
    wide.model.backbone.hidden_size = 48
    write_config(wide, paths["wide"])
    paths["empty"].mkdir()
    paths["dangling"].mkdir()
    (paths["dangling"] / "last_checkpoint").write_text(str(root / "moved/gone.pth"))
    return paths


@pytest.fixture(scope="module")
def trained(area) -> Path:
    """Two iterations of the tiny config: iter_2.pth and last_checkpoint (in-process, cheaper than a subprocess)."""
    assert train.main([str(area["tiny"]), "--work-dir", str(area["trained"])]) in (0, None)
    return area["trained"]


@pytest.fixture(scope="module")
def results(area, request) -> dict[str, tuple[subprocess.CompletedProcess, dict, dict]]:
    """Every runnable row's completed process and its watched folders' snapshots before/after. Rows that do not
    need the trained work dir start first and import while it trains."""
    commands, folders = {}, {}
    for i, row in enumerate(ROWS):
        if row.needs and importlib.util.find_spec(row.needs) is None:
            continue
        names = {**{k: str(v) for k, v in area.items()}, "fresh": str(area["root"] / f"fresh_{i}")}
        commands[row.name] = ["tools/train.py", *shlex.split(row.args.format(**names))]
        folders[row.name] = {w: Path(names[w]) for w in row.watched}
    late = {row.name for row in ROWS if row.name in commands and "{trained}" in row.args}
    before = {n: {w: snapshot(p) for w, p in folders[n].items()} for n in commands if n not in late}
    started = start_tools({n: c for n, c in commands.items() if n not in late}, cwd=ROOT)
    request.getfixturevalue("trained")
    before.update({n: {w: snapshot(p) for w, p in folders[n].items()} for n in late})
    started.update(start_tools({n: commands[n] for n in late}, cwd=ROOT))
    done = finish_tools(started)
    return {n: (done[n], before[n], {w: snapshot(p) for w, p in folders[n].items()}) for n in commands}


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_is_one_clear_error_and_changes_nothing(row, results):
    if row.needs:
        pytest.importorskip(row.needs)
    out, before, after = results[row.name]
    lines = out.stderr.strip().splitlines()
    assert out.returncode == row.returncode, out.stderr[-2000:]
    assert lines and re.match(row.first_line, lines[0]), out.stderr[-2000:]
    assert re.search(row.also, out.stderr), out.stderr
    assert "Traceback" not in out.stderr and len(lines) <= 8, out.stderr
    assert after == before  # nothing written, moved or deleted


def test_overwrite_moves_old_checkpoints_aside_and_deletes_nothing(area, trained, tmp_path):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(trained, work)
    old = snapshot(work)
    args = train.parse_args([str(area["tiny"]), "--work-dir", str(work), "--overwrite"])
    cfg = train.apply_args(train.load_config(args.config, args.cfg_options), args)
    moved_to = train.prepare_work_dir(cfg, args)
    assert moved_to is not None and moved_to.parent == work and moved_to.name.startswith("overwritten_")
    assert not (work / "iter_2.pth").exists() and not (work / "last_checkpoint").exists()
    kept = {name.split("/", 1)[-1] if name.startswith("overwritten_") else name: stat
            for name, stat in snapshot(work).items()}
    assert {k: v[0] for k, v in kept.items()} == {k: v[0] for k, v in old.items()}  # every file, same size


def test_help_imports_neither_torch_nor_mmengine():
    code = ("import runpy, sys\nsys.argv = ['tools/train.py', '--help']\n"
            "try:\n    runpy.run_path('tools/train.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'mmengine', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert "--resume" in out.stdout and out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_following_the_nan_advice_gets_past_the_divergence(tmp_path):
    """lr jumps to 3 before iteration 2: iteration 3's loss explodes (finite, saved as iter_3.pth), iteration 4's is
    not finite. The guard must name iter_1.pth, not a diverged one, and its command must get past iteration 4."""
    cfg = tiny_digits_config(tmp_path / "unused", max_iters=6, checkpoint_interval=1)
    cfg.custom_hooks += [dict(type="SpikeLrAt", at=2, lr=3.0),
                         dict(type="LossRecorder", path=str(tmp_path / "losses.jsonl"))]
    config, work = write_config(cfg, tmp_path / "nan.py"), tmp_path / "work"
    with pytest.raises(NonFiniteLossError) as caught:
        train.main([str(config), "--work-dir", str(work)])
    message = str(caught.value)
    health = json.loads((work / "checkpoint_health.json").read_text())
    assert health["3"]["loss"] > 1e3 and not health["3"]["healthy"] and (work / "iter_3.pth").is_file()
    assert re.search(r"iteration 4.*Last healthy checkpoint: .*iter_1\.pth \(iteration 1, loss \d", message), message
    command = next(line for line in message.splitlines() if line.strip().startswith("visionmix train"))
    argv = shlex.split(command)
    argv = argv[argv.index("train") + 1:]
    assert "--resume" in argv and argv[argv.index("--resume") + 1] == str(work / "iter_1.pth"), command
    assert "optim_wrapper.optimizer.lr=0.0004" in argv, command

    assert train.main(argv) in (0, None)
    losses = recorded(tmp_path / "losses.jsonl")  # the resumed run's values replace the diverged ones
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(losses[i]) and losses[i] < 10 for i in (2, 3, 4, 5, 6)), losses
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "resume: learning rate set to 0.0004 from --cfg-options (checkpoint had 0.004)" in logs
