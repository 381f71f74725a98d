"""Bad and hostile input across the tools: one clear error, the right exit code, nothing run, nothing changed.

Each row is a command line run as a subprocess (a few at a time). It must exit with ``returncode``, print a first
stderr line matching ``first_line``, leave every watched folder exactly as it was (files, sizes, modification
times), print no traceback, and create no marker file: the hostile inputs (pickles, YAML tags, config strings)
would ``touch`` one of ``{root}/pwned_*`` if any of their code ran.
"""
from __future__ import annotations

import os
import pickle
import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from tests.tools.helpers import ROOT, load_tool, run_tools, snapshot, tiny_digits_config, write_config
from visionmix.engine.work_dir_lock import WorkDirLock

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

train = load_tool("train")


class Exploit:
    """Unpickling this runs ``touch <marker>``: what a hostile checkpoint or annotation file carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@dataclass(frozen=True)
class Row:
    """``args`` is formatted with the fixture's paths (``{root}``, ``{tiny}``, ``{trained}``, ...)."""

    name: str
    tool: str
    args: str
    returncode: int
    first_line: str  # regex for the first line of stderr
    watched: tuple[str, ...] = ("trained",)
    env: dict = field(default_factory=dict)


NOT_ALLOWED = r"type '{}' at {} is not allowed"
UNSAFE_READER = NOT_ALLOWED + r": it reads its ann_file with pickle \(\.pkl\) or yaml\.Loader"
DATA_ONLY = r"error: .*{} holds the class/function posix\.system; checkpoints are read as data.*--trust-checkpoint"
WIDEN = r"error: .*{}: {} in a YAML config: a data file cannot widen what configs may build"
BOMB = r".*bomb\.yaml: its aliases expand to more than 200,000 nodes"
ROWS = [
    # 1. a YAML config cannot widen its own trust
    Row("yaml trusts a package", "train", "{widen_prefix} --work-dir {fresh}", 1,
        WIDEN.format("widen_prefix.yaml", "trusted_type_prefixes"), ("fresh",)),
    Row("yaml trusts a package (flops)", "flops", "{widen_prefix}", 1,
        "error: .*" + WIDEN.format("widen_prefix.yaml", "trusted_type_prefixes")[len("error: .*"):]),
    Row("yaml imports a module", "train", "{widen_import} --work-dir {fresh}", 1,
        WIDEN.format("widen_import.yaml", "custom_imports"), ("fresh",)),
    Row("yaml names subprocess.Popen", "flops", "{popen}", 1,
        ".*" + NOT_ALLOWED.format("subprocess.Popen", "model")),
    Row("yaml hook is subprocess.Popen", "train", "{popen_hook} --work-dir {fresh}", 1,
        "error: " + NOT_ALLOWED.format("subprocess.Popen", r"custom_hooks\[4\]"), ("fresh",)),
    Row("override trusts nothing it does not name", "train",
        "{quickstart} --work-dir {fresh} --cfg-options custom_hooks.evil.type=subprocess.Popen", 1,
        "error: " + NOT_ALLOWED.format("subprocess.Popen", r"custom_hooks\[4\]"), ("fresh",)),
    # 2. an allowed package's class that reads files unsafely
    Row("BaseDataset as the model (flops)", "flops", "{dataset_model}", 1,
        ".*" + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "model")),
    Row("BaseDataset as the model (sample)", "sample", "{dataset_model} --checkpoint {dummy} --out {out}", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "model"), ("out",)),
    Row("BaseDataset as the model (eval)", "eval",
        "--checkpoint {dummy} --config {dataset_model} --metrics digits --out {out}", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "model"), ("out",)),
    Row("BaseDataset as the training data", "train", "{dataset_train} --work-dir {fresh}", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.base_dataset.BaseDataset", "train_dataloader.dataset"),
        ("fresh",)),
    Row("BaseDataset with a yaml.Loader file", "train", "{dataset_yaml} --work-dir {fresh}", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "train_dataloader.dataset"), ("fresh",)),
    Row("BaseDataset by override", "train",
        "{tiny} --work-dir {fresh} --cfg-options train_dataloader.dataset.type=mmengine.dataset.BaseDataset "
        "train_dataloader.dataset.ann_file={evil_pkl}", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "train_dataloader.dataset"), ("fresh",)),
    Row("BaseDataset in compare", "compare", "{dataset_model} --res 8 --reps 1", 1,
        "error: " + UNSAFE_READER.format("mmengine.dataset.BaseDataset", "model")),
    Row("profiler hook writes anywhere", "train", "{quickstart} --work-dir {fresh} --cfg-options "
        "custom_hooks.prof.type=ProfilerHook", 1, "error: " + NOT_ALLOWED.format("ProfilerHook", r"custom_hooks\[4\]"),
        ("fresh",)),
    # 3. the config stored in a checkpoint is never executed
    Row("load_from mismatch with Python in meta", "train",
        "{tiny} --work-dir {fresh} --cfg-options load_from={pymeta} model.backbone.hidden_size=48", 1,
        r"error: checkpoint .*pymeta\.pth does not fit this config's model", ("fresh",)),
    # 4. a config cannot make a pickle trusted
    Row("resume + load_from a pickle", "train",
        "{tiny} --work-dir {fresh} --cfg-options resume=True load_from={evil_pth}", 1,
        DATA_ONLY.format("evil.pth"), ("fresh",)),
    Row("work_dir trusts what is under it", "train",
        "{tiny} --cfg-options work_dir={evil_dir} load_from={evil_dir}/sub/evil.pth", 1,
        DATA_ONLY.format("evil.pth"), ("evil_dir",)),
    # 5. local checkpoints are data for every tool
    Row("sample a pickle", "sample", "{tiny} --checkpoint {evil_pth} --out {out}", 1, DATA_ONLY.format("evil.pth"),
        ("out",)),
    Row("eval a pickle", "eval", "--checkpoint {evil_pth} --config {tiny} --metrics digits --out {out}", 1,
        DATA_ONLY.format("evil.pth"), ("out",)),
    Row("eval_digits a pickle", "eval_digits", "{tiny} --checkpoint {evil_pth} --out {out}", 1,
        DATA_ONLY.format("evil.pth"), ("out",)),
    Row("convert a pickle", "convert", "dit {evil_pth} {out}/x.pt", 1, r"error: .*evil\.pth: refused to unpickle",
        ("out",)),
    Row("trust a zoo row", "sample", "--checkpoint zoo:drwkv_digits --trust-checkpoint --out {out}", 2,
        r"error: --trust-checkpoint applies to a local --checkpoint file", ("out",)),
    Row("trust with nothing to load", "train", "{tiny} --work-dir {fresh} --trust-checkpoint", 2,
        r"error: --trust-checkpoint: this run loads no local checkpoint", ("fresh",)),
    # 7. paths from a config stay in the work dir
    Row("filename_tmpl overwrites a file", "train",
        "{tiny} --work-dir {fresh} --cfg-options default_hooks.checkpoint.filename_tmpl={victim}", 1,
        r"error: default_hooks.checkpoint.filename_tmpl=.*victim\.txt': file names stay inside the work dir",
        ("fresh", "victim_dir")),
    Row("filename_tmpl climbs out", "train",
        "{tiny} --work-dir {fresh} --cfg-options default_hooks.checkpoint.filename_tmpl=../up_{{}}.pth", 1,
        r"error: default_hooks.checkpoint.filename_tmpl='\.\./up_\{{\}}\.pth': file names stay inside", ("fresh",)),
    Row("checkpoint out_dir elsewhere", "train",
        "{tiny} --work-dir {fresh} --cfg-options default_hooks.checkpoint.out_dir={victim_dir}", 1,
        r"error: default_hooks.checkpoint.out_dir=.*: a config cannot choose where a run writes", ("fresh",)),
    Row("logger out_dir elsewhere", "train",
        "{tiny} --work-dir {fresh} --cfg-options default_hooks.logger.out_dir={victim_dir}", 1,
        r"error: default_hooks.logger.out_dir=.*: a config cannot choose where a run writes", ("fresh",)),
    Row("scalars elsewhere", "train", "{tiny} --work-dir {fresh} --cfg-options visualizer.save_dir={victim_dir}", 1,
        r"error: visualizer.save_dir=.*: a config cannot choose where a run writes", ("fresh",)),
    # 8. one run per work dir
    Row("work dir held by a live run", "train", "{tiny} --work-dir {locked}", 1,
        r"error: work dir .*locked is in use by another run \(PID \d+ on .*\); wait for it to finish",
        ("locked",)),
    # 9. YAML bounds
    Row("alias bomb (flops)", "flops", "{bomb}", 1, r"error: .*bomb\.yaml: .*" + BOMB[2:]),
    Row("alias bomb (train)", "train", "{bomb} --work-dir {fresh}", 1, "error: " + BOMB, ("fresh",)),
    Row("recursive alias", "train", "{recursive} --work-dir {fresh}", 1,
        r"error: .*recursive\.yaml, line 1: a recursive alias", ("fresh",)),
    Row("huge yaml", "train", "{huge} --work-dir {fresh}", 1,
        r"error: .*huge\.yaml: 5,000,\d+ bytes of YAML, more than the 4,194,304", ("fresh",)),
    # 11. values and places with clear messages
    Row("max_iters not a number", "train", "{tiny} --work-dir {fresh} --cfg-options train_cfg.max_iters=abc", 1,
        r"error: train_cfg.max_iters must be a positive integer, got 'abc'$", ("fresh",)),
    Row("negative depth", "train", "{tiny} --work-dir {fresh} --cfg-options model.backbone.depth=-3", 1,
        r"error: model.backbone.depth must be a positive integer, got -3$", ("fresh",)),
    Row("zero width", "flops", "{tiny} --cfg-options model.backbone.hidden_size=0", 1,
        r"error: .*tiny\.py: ValueError: model.backbone.hidden_size must be a positive integer, got 0$"),
    Row("negative input size", "flops", "{tiny} --cfg-options model.backbone.input_size=-8", 1,
        r"error: .*tiny\.py: ValueError: model.backbone.input_size must be a positive integer, got -8$"),
    Row("zero sampling steps", "sample",
        "{tiny} --checkpoint {trained}/iter_2.pth --out {out} --cfg-options model.sampling.steps=0", 1,
        r"error: model.sampling.steps must be a positive integer, got 0$", ("out", "trained")),
    Row("work dir is a file", "train", "{tiny} --work-dir {a_file}", 2,
        r"error: work dir .*a_file is a file, not a folder"),
    Row("config syntax error", "train", "{syntax} --work-dir {fresh}", 1,
        r"error: .*syntax\.py, line 2: Python syntax error in the config", ("fresh",)),
    Row("slurm outside slurm", "train", "{tiny} --work-dir {fresh} --launcher slurm", 2,
        r"error: --launcher slurm: this is not a SLURM job step", ("fresh",)),
    Row("pytorch launcher without torchrun", "train", "{tiny} --work-dir {fresh} --launcher pytorch", 2,
        r"error: --launcher pytorch: no RANK in the environment", ("fresh",)),
    Row("http mirror refuses", "sample", "--checkpoint zoo:dit_xl2_in256 --num 1 --out {out} --cfg-options "
        "model.backbone.depth=1 model.backbone.hidden_size=32 model.backbone.num_heads=2", 1,
        r"error: zoo:dit_xl2_in256: could not download http://127\.0\.0\.1:{closed_port}/", ("out", "hub"),
        env={"VISIONMIX_ZOO_MIRROR": "http://127.0.0.1:{closed_port}", "TORCH_HOME": "{hub}"}),
    Row("more samples than memory", "sample", "{tiny} --checkpoint {trained}/iter_2.pth --num 1000000000000 "
        "--out {out}", 2, r"error: --num-samples 1000000000000: the 8x8 samples need 200000.0 GB", ("out", "trained")),
    Row("load_from is a folder", "train", "{tiny} --work-dir {fresh} --cfg-options load_from={out}", 1,
        r"error: checkpoint .*out is a folder, not a file", ("fresh",)),
    Row("truncated checkpoint", "sample", "{tiny} --checkpoint {truncated} --out {out}", 1,
        r"error: checkpoint .*truncated\.pth is truncated or corrupt", ("out",)),
    Row("unknown zoo name", "eval_digits", "--checkpoint zoo:drwkv_digits8 --out {out}", 1,
        r"error: unknown zoo model 'drwkv_digits8' \(did you mean 'drwkv_digits'\?\)", ("out",)),
    Row("override addresses a list by name", "train", "{tiny} --work-dir {fresh} --cfg-options "
        "custom_hooks.ema.momentum=0.5", 1, r"error: --cfg-options custom_hooks.ema.momentum: the config has no place "
        r"for it", ("fresh",)),
    Row("scope imports a module", "train", "{tiny} --work-dir {fresh} --cfg-options default_scope=os", 1,
        r"error: scope 'os' at default_scope is not allowed", ("fresh",)),
]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def yaml_variant(base: dict, path: Path, **changes) -> Path:
    """``base`` (a YAML dump of the tiny config) with top-level keys replaced, written to ``path``."""
    data = yaml.safe_load(yaml.safe_dump(base))
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, str]:
    """The files the rows name: a tiny config (.py and its YAML dump) trained for two iterations, hostile files, a
    held work dir."""
    root = tmp_path_factory.mktemp("bad_input")
    cfg = tiny_digits_config(root / "unused", max_iters=2, checkpoint_interval=2)
    tiny = write_config(cfg, root / "tiny.py")
    assert train.main([str(tiny), "--work-dir", str(root / "trained")]) in (0, None)
    cfg.dump(str(root / "tiny.yaml"))
    base = yaml.safe_load((root / "tiny.yaml").read_text())
    pwned = {kind: root / f"pwned_{kind}" for kind in ("pkl", "yaml", "pth", "meta", "popen")}
    popen = dict(type="subprocess.Popen", args=["touch", str(pwned["popen"])])
    (root / "evil.pkl").write_bytes(pickle.dumps(Exploit(pwned["pkl"])))
    (root / "evil_ann.yaml").write_text(f"!!python/object/apply:os.system ['touch {pwned['yaml']}']\n")
    (root / "evil_dir/sub").mkdir(parents=True)
    for folder in (root, root / "evil_dir/sub"):
        torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": Exploit(pwned["pth"])}, folder / "evil.pth")
    checkpoint = torch.load(root / "trained/iter_2.pth", weights_only=False)
    code = f"__import__('os').system('touch {pwned['meta']}')\nmodel = dict(backbone=dict(hidden_size=32))\n"
    checkpoint["meta"].update(cfg=code, config=code, cfg_format=None)
    torch.save(checkpoint, root / "pymeta.pth")
    torch.save({}, root / "dummy.pth")
    (root / "truncated.pth").write_bytes((root / "trained/iter_2.pth").read_bytes()[:4000])
    bomb = "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 26))
    (root / "bomb.yaml").write_text("a0: &a0 [x, x]\n" + bomb + "model: *a25\n")
    (root / "recursive.yaml").write_text("model: &m {type: x, inner: *m}\n")
    (root / "huge.yaml").write_text("pad: " + "x" * 5_000_000 + "\n")
    (root / "syntax.py").write_text("model = dict(\n    depth=3,,\n)\n")
    (root / "victim_dir").mkdir()
    (root / "victim_dir/victim.txt").write_text("precious")
    (root / "a_file").write_text("not a folder")
    dataset = dict(type="mmengine.dataset.base_dataset.BaseDataset", ann_file=str(root / "evil.pkl"), lazy_init=False)
    loader = {**base["train_dataloader"], "dataset": dataset}
    paths = dict(
        root=root, tiny=tiny, trained=root / "trained", quickstart=ROOT / "configs/quickstart/drwkv_digits8.py",
        out=root / "out", hub=root / "hub", locked=root / "locked",
        dummy=root / "dummy.pth", evil_pkl=root / "evil.pkl", evil_pth=root / "evil.pth", evil_dir=root / "evil_dir",
        pymeta=root / "pymeta.pth", truncated=root / "truncated.pth", bomb=root / "bomb.yaml", a_file=root / "a_file",
        recursive=root / "recursive.yaml", huge=root / "huge.yaml", syntax=root / "syntax.py",
        victim=root / "victim_dir/victim.txt", victim_dir=root / "victim_dir",
        widen_prefix=yaml_variant(base, root / "widen_prefix.yaml", trusted_type_prefixes=["subprocess"],
                                  model=popen),
        widen_import=yaml_variant(base, root / "widen_import.yaml", custom_imports=dict(imports=["subprocess"]),
                                  custom_hooks=base["custom_hooks"] + [popen]),
        popen=yaml_variant(base, root / "popen.yaml", model=popen),
        popen_hook=yaml_variant(base, root / "popen_hook.yaml", custom_hooks=base["custom_hooks"] + [popen]),
        dataset_model=yaml_variant(base, root / "dataset_model.yaml", model={**dataset, "type":
                                                                              "mmengine.dataset.BaseDataset"}),
        dataset_train=yaml_variant(base, root / "dataset_train.yaml", train_dataloader=loader),
        dataset_yaml=yaml_variant(base, root / "dataset_yaml.yaml", train_dataloader={**loader, "dataset": {
            **dataset, "type": "mmengine.dataset.BaseDataset", "ann_file": str(root / "evil_ann.yaml")}}),
    )
    paths["out"].mkdir()
    paths["hub"].mkdir()
    (paths["out"] / "earlier.npz").write_bytes(b"earlier results")
    return {**{k: str(v) for k, v in paths.items()}, "closed_port": str(closed_port()), "pwned": pwned}


@pytest.fixture(scope="module")
def results(area) -> dict:
    """Every row's completed process and its watched folders before and after; the held work dir stays locked by
    this process while the rows run."""
    commands, env, folders = {}, {}, {}
    for i, row in enumerate(ROWS):
        names = {**area, "fresh": str(Path(area["root"]) / f"fresh_{i}")}
        commands[row.name] = [f"tools/{row.tool}.py", *shlex.split(row.args.format(**names))]
        env[row.name] = {k: v.format(**names) for k, v in row.env.items()}
        folders[row.name] = {w: Path(names[w]) for w in row.watched}
    before = {n: {w: snapshot(p) for w, p in f.items()} for n, f in folders.items()}
    with WorkDirLock(area["locked"]):
        before["work dir held by a live run"] = {"locked": snapshot(Path(area["locked"]))}
        done = run_tools(commands, cwd=ROOT, env=env, parallel=4)
        after = {n: {w: snapshot(p) for w, p in f.items()} for n, f in folders.items()}
    return {n: (done[n], before[n], after[n]) for n in commands}


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_is_one_clear_error_that_runs_and_changes_nothing(row, area, results):
    out, before, after = results[row.name]
    lines = out.stderr.strip().splitlines()
    first = row.first_line.format(**area)
    assert out.returncode == row.returncode, out.stderr[-3000:]
    assert lines and re.match(first, lines[0]), out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr
    assert after == before  # nothing written, moved or deleted
    assert not [p for p in area["pwned"].values() if p.exists()], "code from a hostile file ran"


def test_the_table_covers_every_tool_the_issue_names():
    assert len(ROWS) >= 40
    assert {"train", "flops", "sample", "eval", "eval_digits", "compare", "convert"} <= {r.tool for r in ROWS}


def test_a_checkpoint_whose_stored_config_is_python_is_used_and_never_run(area, tmp_path):
    """Item 3: the weights fit, so every tool goes ahead -- reading the config text as data, never executing it."""
    from visionmix.cli import run_tool

    marker, pymeta, tiny = area["pwned"]["meta"], area["pymeta"], area["tiny"]
    out = str(tmp_path / "samples")
    assert run_tool(load_tool("sample").main, [tiny, "--checkpoint", pymeta, "--num", "2", "--steps", "1",
                                               "--out", out]) == 0
    assert run_tool(load_tool("eval_digits").main, [tiny, "--checkpoint", pymeta, "--per-class", "1", "--steps", "1",
                                                    "--cfg-scales", "1", "--out", out]) == 0
    assert run_tool(load_tool("eval").main, ["--checkpoint", pymeta, "--config", tiny, "--metrics", "digits",
                                             "--num", "10", "--steps", "1", "--out", out]) == 0
    work = tmp_path / "work"  # resuming: mmengine's Runner.resume would execute meta["config"]
    work.mkdir()
    (work / "iter_2.pth").write_bytes(Path(pymeta).read_bytes())
    assert train.main([tiny, "--work-dir", str(work), "--resume", "--cfg-options", "train_cfg.max_iters=3"]) in (0, None)
    assert not marker.exists()
