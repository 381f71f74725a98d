"""VisionMixRunner's pieces that need no training run: optimiser overrides after a resume, the console filter."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import LinearLR, OptimWrapper

from visionmix.engine.runner import ConsoleNoiseFilter, apply_optimizer_overrides


def resumed_runner(with_scheduler: bool) -> SimpleNamespace:
    optim = OptimWrapper(torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=0.1, weight_decay=0.0))
    schedulers = [LinearLR(optim, start_factor=0.5, by_epoch=False, begin=0, end=4)] if with_scheduler else None
    for _ in range(2 if with_scheduler else 0):  # part-way through the warm-up
        optim.step()
        schedulers[0].step()
    return SimpleNamespace(optim_wrapper=optim, param_schedulers=schedulers, logger=logging.getLogger("test_runner"))


def test_explicit_lr_replaces_the_resumed_one_and_is_logged(caplog):
    runner = resumed_runner(with_scheduler=False)
    with caplog.at_level(logging.INFO, logger="test_runner"):
        apply_optimizer_overrides(runner, {"lr": 0.01, "weight_decay": 0.05})
    group = runner.optim_wrapper.param_groups[0]
    assert group["lr"] == pytest.approx(0.01) and group["initial_lr"] == 0.01 and group["weight_decay"] == 0.05
    assert "resume: learning rate set to 0.01 from --cfg-options (checkpoint had 0.1)" in caplog.text


def test_explicit_lr_rescales_a_schedule_in_progress():
    runner = resumed_runner(with_scheduler=True)
    scheduler = runner.param_schedulers[0]
    before = runner.optim_wrapper.param_groups[0]["lr"]
    assert 0.05 < before < 0.1
    apply_optimizer_overrides(runner, {"lr": 0.01})
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(before / 10)
    assert scheduler.base_values == [0.01]
    for _ in range(3):
        runner.optim_wrapper.step()
        scheduler.step()
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(0.01)  # the warm-up ends at the new base


def test_settings_outside_the_param_groups_are_named_not_applied(caplog):
    runner = resumed_runner(with_scheduler=False)
    with caplog.at_level(logging.WARNING, logger="test_runner"):
        apply_optimizer_overrides(runner, {"not_a_group_key": 1})
    assert "not_a_group_key is not a parameter-group setting" in caplog.text


@pytest.mark.parametrize("message, shown", [
    ("\n" + "-" * 60 + "\nSystem environment:\n    sys.platform: linux", False),
    ("Config:\nmodel = dict()", False),
    ("Hooks will be executed in the following order:\nbefore_run:", False),
    ('"FileClient" will be deprecated in future.', False),
    ("Iter(train) [2/2]  lr: 4.0000e-03  loss: 0.9", True),
    ("resume: learning rate set to 0.0004 from --cfg-options (checkpoint had 0.004)", True),
])
def test_console_drops_dumps_and_routine_warnings_only(message, shown):
    record = logging.LogRecord("mmengine", logging.INFO, __file__, 1, message, None, None)
    assert ConsoleNoiseFilter().filter(record) is shown
