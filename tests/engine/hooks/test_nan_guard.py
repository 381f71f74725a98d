"""NaNGuardHook on a stand-in runner: which checkpoint it calls healthy, what it advises, what it keeps on disk."""
from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import CheckpointHook

from visionmix.engine import NaNGuardHook, NonFiniteLossError
from visionmix.engine.hooks.nan_guard import HEALTH_FILE


def make_runner(tmp_path: Path, max_keep: int = 10) -> SimpleNamespace:
    hook = CheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=max_keep)
    hook.out_dir, hook.filename_tmpl, hook.keep_ckpt_ids = str(tmp_path), "iter_{}.pth", deque(maxlen=max_keep)
    return SimpleNamespace(model=torch.nn.Linear(4, 4), iter=0, work_dir=str(tmp_path), rank=0, hooks=[hook],
                           cfg=SimpleNamespace(filename=str(tmp_path / "cfg.py")), _resume=False, _load_from=None,
                           optim_wrapper=SimpleNamespace(param_groups=[{"lr": 0.01}]),
                           logger=logging.getLogger("test_nan_guard"))


def step(guard: NaNGuardHook, runner, loss: float, save: bool = True) -> None:
    """One training iteration: the guard, then (like CheckpointHook) a save with max_keep_ckpts rotation."""
    guard.after_train_iter(runner, 0, outputs={"loss": torch.tensor(loss)})
    it = runner.iter + 1
    if save:
        hook = runner.hooks[0]
        if len(hook.keep_ckpt_ids) == hook.max_keep_ckpts:
            (Path(runner.work_dir) / f"iter_{hook.keep_ckpt_ids.popleft()}.pth").unlink()
        guard.before_save_checkpoint(runner, {"meta": {}})
        (Path(runner.work_dir) / f"iter_{it}.pth").touch()
        hook.keep_ckpt_ids.append(it)
    runner.iter = it


def run(guard, runner, losses, **kwargs):
    guard.before_train(runner)
    for loss in losses:
        step(guard, runner, loss, **kwargs)


def test_nan_names_the_last_checkpoint_its_next_loss_confirmed(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path)
    run(guard, runner, [1.0, 0.9, 0.8])
    with pytest.raises(NonFiniteLossError) as err:
        step(guard, runner, float("nan"))
    first, command = str(err.value).splitlines()[:2]
    # iter_3's weights gave the NaN: iter_2 is the last one whose weights were seen to work (its loss is the one
    # logged at iteration 2, computed before that step)
    assert "iteration 4" in first and f"Last healthy checkpoint: {tmp_path}/iter_2.pth (iteration 2, loss 0.9)" in first
    assert f"--resume {tmp_path}/iter_2.pth" in command and "optim_wrapper.optimizer.lr=0.001" in command
    health = json.loads((tmp_path / HEALTH_FILE).read_text())
    assert health["2"]["confirmed"] is True and health["3"]["confirmed"] is False


def test_exploding_but_finite_checkpoints_are_not_called_healthy(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path)
    run(guard, runner, [1.0, 0.9, 0.8, 3e14, 1e20])
    with pytest.raises(NonFiniteLossError, match=r"iter_2\.pth \(iteration 2, loss 0\.9\); later ones are suspect "
                                                  r"\(iter_3\.pth: its weights gave loss 3e\+14 at iteration 4\)"):
        step(guard, runner, float("inf"))
    assert guard.records[4]["reason"].startswith("loss 3e+14 is over 100x") and not guard.records[5]["healthy"]


def test_exploding_weights_are_caught_by_their_norm(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path)
    run(guard, runner, [1.0, 0.9])
    with torch.no_grad():
        runner.model.weight.mul_(1e6)
    step(guard, runner, 0.9)
    assert not guard.records[3]["healthy"] and "weight norm" in guard.records[3]["reason"]


def test_last_healthy_checkpoint_survives_max_keep_rotation(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path, max_keep=2)
    run(guard, runner, [1.0, 0.9, 1e9, 1e10, 1e11])  # iter_2 unconfirmed (iteration 3 exploded), iter_1 healthy
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["iter_1.pth", "iter_4.pth", "iter_5.pth"]
    with pytest.raises(NonFiniteLossError, match=r"iter_1\.pth \(iteration 1"):
        step(guard, runner, float("nan"))


def test_without_a_healthy_checkpoint_it_says_start_again(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path)
    run(guard, runner, [1.0, 1e6])
    with pytest.raises(NonFiniteLossError, match="No healthy checkpoint") as err:
        step(guard, runner, float("nan"))
    assert "--overwrite" in str(err.value) and "--resume" not in str(err.value)


def test_a_resumed_run_keeps_the_records_up_to_its_start(tmp_path):
    guard, runner = NaNGuardHook(), make_runner(tmp_path)
    run(guard, runner, [1.0, 0.9, 0.8, 1e9])
    resumed, runner.iter = NaNGuardHook(), 2  # resumed from iter_2: records 3 and 4 belong to the abandoned run
    resumed.after_load_checkpoint(SimpleNamespace(_resume=True), {"nan_guard": (guard.loss_scale, guard.norm_scale)})
    resumed.before_train(runner)
    assert sorted(resumed.records) == [1, 2] and resumed.loss_scale == guard.loss_scale
    step(resumed, runner, 0.85)
    with pytest.raises(NonFiniteLossError, match=r"iter_2\.pth \(iteration 2"):
        step(resumed, runner, float("nan"))


def _rank_sees(rank: int, init_file: str, work_dir: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        guard, runner = NaNGuardHook(), make_runner(Path(work_dir) / str(rank))
        runner.rank = rank
        run(guard, runner, [1.0, 0.9])
        try:
            step(guard, runner, float("nan") if rank == 1 else 0.8)  # only rank 1's batch diverges
            results[rank] = "kept training"
        except NonFiniteLossError:
            results[rank] = "stopped"
    finally:
        torch.distributed.destroy_process_group()


def test_a_nan_on_one_ddp_rank_stops_every_rank(tmp_path):
    context = torch.multiprocessing.get_context("spawn")
    results = context.Manager().dict()
    for rank in range(2):
        (tmp_path / str(rank)).mkdir()
    procs = [context.Process(target=_rank_sees, args=(r, str(tmp_path / "init"), str(tmp_path), results))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert dict(results) == {0: "stopped", 1: "stopped"}
