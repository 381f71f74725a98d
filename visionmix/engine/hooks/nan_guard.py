"""Stop training at the first non-finite loss, and name a checkpoint that is worth resuming from.

Every iteration the guard compares the loss and the global weight norm with their running scales (moving
averages over healthy iterations). An iteration is healthy when both are finite, the loss is at most
``loss_factor`` x its scale and the weight norm at most ``norm_factor`` x its scale. When a checkpoint is saved
its iteration's health goes into the checkpoint (``meta["health"]``) and into ``<work_dir>/checkpoint_health.json``;
the next iteration's loss, the first computed with exactly those weights, confirms it or marks it suspect.

On a NaN/inf loss the error names the last confirmed healthy checkpoint (iteration and loss) and the command
that resumes from it with a tenth of the learning rate. While the run is unhealthy that checkpoint is kept out of
the CheckpointHook's ``max_keep_ckpts`` rotation, so diverged checkpoints cannot push it off the disk.

Under DDP every rank judges the mean loss over all ranks (one scalar all-reduce per iteration): a NaN on any
rank stops every rank at the same iteration, instead of one rank leaving while the others wait for it forever
in the next gradient all-reduce, and all ranks keep the same health records.
"""
from __future__ import annotations

import json
import math
import os.path as osp
import shlex

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from ...atomic_write import write_text

HEALTH_FILE = "checkpoint_health.json"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def last_checkpoint(work_dir: str) -> str | None:
    """The path mmengine's CheckpointHook recorded as the latest checkpoint, if any."""
    pointer = osp.join(work_dir, "last_checkpoint")
    if osp.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


def weight_norm(model: torch.nn.Module) -> float:
    """The L2 norm of all parameters together."""
    with torch.no_grad():
        params = [p.detach() for p in model.parameters()]
        return float(torch.nn.utils.get_total_norm(params, error_if_nonfinite=False)) if params else 0.0


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """Raises :class:`NonFiniteLossError` with the last healthy checkpoint and the command to resume from it.

    Runs before the checkpoint hook (priority ABOVE_NORMAL), so a non-finite iteration is never saved.
    ``momentum`` is the weight of each healthy iteration in the running scales.
    """

    priority = "ABOVE_NORMAL"

    def __init__(self, loss_factor: float = 100.0, norm_factor: float = 10.0, momentum: float = 0.1):
        self.loss_factor, self.norm_factor, self.momentum = loss_factor, norm_factor, momentum
        self.loss_scale: float | None = None
        self.norm_scale: float | None = None
        self.current: dict | None = None  # this iteration's record
        self.records: dict[int, dict] = {}  # iteration -> record of the checkpoint saved there
        self._pending: int | None = None  # the checkpoint the next loss will judge
        self._loaded: dict | None = None

    # running scales travel in checkpoints, so a resumed run judges against what came before
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, "_resume", False):
            self.loss_scale, self.norm_scale = checkpoint.get("nan_guard", (None, None))
            self._loaded = (checkpoint.get("meta") or {}).get("health")

    def before_train(self, runner) -> None:
        self.records = {it: r for it, r in self._read(runner).items() if it <= runner.iter}  # later: abandoned
        if self._loaded and runner.iter not in self.records and runner._load_from:
            self.records[runner.iter] = dict(self._loaded, file=osp.abspath(runner._load_from))
        if self.records.get(runner.iter, {}).get("confirmed") is None and runner.iter in self.records:
            self._pending = runner.iter
        if self.norm_scale is None:
            self.norm_scale = weight_norm(runner.model)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is None:
            return
        loss = loss.detach().float().reshape(()).clone()
        if get_world_size() > 1:
            all_reduce(loss, op="mean")
        value, iteration = float(loss), runner.iter + 1
        if not math.isfinite(value):
            self._confirm(runner, value, iteration, ok=False)
            raise NonFiniteLossError(self.message(runner, value, iteration))
        loss_ok = self.loss_scale is None or abs(value) <= self.loss_factor * abs(self.loss_scale)
        self._confirm(runner, value, iteration, ok=loss_ok)
        norm = weight_norm(runner.model)
        reason = None if loss_ok else f"loss {value:.3g} is over {self.loss_factor:g}x its running scale"
        if reason is None and not (math.isfinite(norm) and norm <= self.norm_factor * (self.norm_scale or math.inf)):
            reason = f"weight norm {norm:.3g} is over {self.norm_factor:g}x its running scale {self.norm_scale:.3g}"
        self.current = dict(iteration=iteration, loss=value, weight_norm=norm, lr=self._lr(runner),
                            healthy=reason is None, reason=reason, confirmed=None)
        if reason is None:
            m = self.momentum
            self.loss_scale = value if self.loss_scale is None else (1 - m) * self.loss_scale + m * value
            self.norm_scale = (1 - m) * self.norm_scale + m * norm
        else:
            self._protect(runner, iteration)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["nan_guard"] = (self.loss_scale, self.norm_scale)
        if self.current is None or self.current["iteration"] != runner.iter + 1:
            return  # not saved from the training loop
        record = dict(self.current, file=self._path(runner, self.current["iteration"]))
        checkpoint.setdefault("meta", {})["health"] = record
        self.records[record["iteration"]] = record
        self._pending = record["iteration"]
        self._write(runner)

    def message(self, runner, value: float, iteration: int) -> str:
        """What went wrong, the last healthy checkpoint and the command that resumes from it."""
        best = self.last_healthy(before=iteration)
        lr = min([x for x in (self._lr(runner), best and best["lr"]) if x] or [1e-4]) / 10
        config = runner.cfg.filename or "CONFIG"
        dumped = osp.join(runner.work_dir, osp.basename(config))
        command = ["visionmix", "train", osp.abspath(dumped if osp.isfile(dumped) else config),
                   "--work-dir", osp.abspath(runner.work_dir)]
        command += ["--resume", best["file"]] if best else ["--overwrite"]
        command += ["--cfg-options", f"optim_wrapper.optimizer.lr={lr:.3g}"]
        head = f"loss became {value} at iteration {iteration}; stopped before saving."
        if best is None:
            head += " No healthy checkpoint was saved before it. Start again with a tenth of the learning rate:"
        else:
            head += (f" Last healthy checkpoint: {best['file']} (iteration {best['iteration']}, "
                     f"loss {best['loss']:.4g})")
            later = [r for it, r in sorted(self.records.items()) if best["iteration"] < it < iteration]
            if later:
                head += f"; later ones are suspect ({osp.basename(later[0]['file'])}: {later[0]['reason']})"
            head += ". Resume from it with a tenth of the learning rate:"
        return (f"{head}\n  {shlex.join(command)}\n"
                "or enable gradient clipping (optim_wrapper.clip_grad=dict(max_norm=1.0) in the config).")

    def last_healthy(self, before: int) -> dict | None:
        """The newest checkpoint before iteration ``before`` that was healthy, confirmed, and is still on disk."""
        for it in sorted(self.records, reverse=True):
            record = self.records[it]
            if it < before and record["healthy"] and record.get("confirmed") and osp.isfile(record["file"]):
                return record
        return None

    def _confirm(self, runner, value: float, iteration: int, ok: bool) -> None:
        """Judge the checkpoint saved one iteration ago by this loss, computed with its weights."""
        record = self.records.get(self._pending) if self._pending == iteration - 1 else None
        self._pending = None
        if record is None:
            return
        record["confirmed"] = ok and record["healthy"]
        if not ok:
            record["healthy"] = False
            record["reason"] = record["reason"] or f"its weights gave loss {value:.3g} at iteration {iteration}"
        self._write(runner)

    def _protect(self, runner, iteration: int) -> None:
        """Keep the last healthy checkpoint out of the rotation that would delete it at this iteration's save."""
        best = self.last_healthy(before=iteration)
        for hook in runner.hooks:
            ids = getattr(hook, "keep_ckpt_ids", None)
            if (best and isinstance(hook, CheckpointHook) and hook.max_keep_ckpts > 0 and ids
                    and len(ids) >= hook.max_keep_ckpts and ids[0] == best["iteration"]):
                ids.popleft()
                runner.logger.warning(f"keeping {best['file']} (the last healthy checkpoint) out of "
                                      "max_keep_ckpts rotation while the loss is exploding")

    @staticmethod
    def _lr(runner) -> float | None:
        groups = getattr(getattr(runner, "optim_wrapper", None), "param_groups", None)
        return float(groups[0]["lr"]) if groups else None

    @staticmethod
    def _path(runner, iteration: int) -> str:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        template = (hook and hook.filename_tmpl) or "iter_{}.pth"
        return osp.abspath(osp.join((hook and hook.out_dir) or runner.work_dir, template.format(iteration)))

    @staticmethod
    def _read(runner) -> dict[int, dict]:
        path = osp.join(runner.work_dir, HEALTH_FILE)
        try:
            with open(path) as f:
                return {int(it): record for it, record in json.load(f).items()}
        except (OSError, ValueError):
            return {}

    def _write(self, runner) -> None:
        if runner.rank != 0:
            return
        records = {str(it): r for it, r in sorted(self.records.items())}
        write_text(osp.join(runner.work_dir, HEALTH_FILE), json.dumps(records, indent=1))
