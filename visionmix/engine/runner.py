"""The mmengine ``Runner`` with atomic checkpoint writes stored as data, checkpoint/model fit checks, hyperparameters
that override a resumed optimiser, and a console without mmengine's environment and config dumps."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import os.path as osp
from contextvars import ContextVar
from typing import Any, Mapping

from mmengine.dist import master_only
from mmengine.logging import HistoryBuffer, MessageHub, MMLogger
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmengine.visualization import Visualizer

from ..checkpoint_io import as_training_checkpoint, check_fits, shapes_of
from ..stored_config import FORMAT_KEY, YAML_FORMAT, config_as_yaml
from . import checkpoint as _loaders  # noqa: F401 - registers the data-only loaders with mmengine

_VERBOSE: ContextVar[bool] = ContextVar("visionmix_runner_verbose", default=False)

# long INFO dumps (by how they start) and routine warnings (by what they say) for the log file, not the console
DUMP_PREFIXES = ("\n" + "-" * 60 + "\nSystem environment:", "Config:\n", "Hooks will be executed in the following order")
ROUTINE = ("Distributed training is not used", '"FileClient" will be deprecated', '"HardDiskBackend" is the alias',
           "`save_param_scheduler` is True but", "`resume_param_scheduler` is True but", "has no metainfo")


class ConsoleNoiseFilter(logging.Filter):
    """Drops mmengine's dumps and routine warnings from a console handler (the log file keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith(DUMP_PREFIXES) or any(text in message for text in ROUTINE))


class VisionMixRunner(Runner):
    """Writes each checkpoint to ``<name>.partial`` and renames it into place, so a crash or a full
    disk mid-write never replaces a good checkpoint with a truncated one; refuses a checkpoint that does not fit
    the model with a short message; applies :attr:`optimizer_overrides` after resuming."""

    #: param-group settings (``lr``, ``weight_decay``, ...) the user set explicitly: they replace the resumed ones
    optimizer_overrides: Mapping[str, Any] = {}

    @classmethod
    def from_cfg(cls, cfg, verbose: bool = False) -> "VisionMixRunner":
        """``verbose``: print mmengine's environment, config and hook dumps on the console too."""
        token = _VERBOSE.set(verbose)
        try:
            return super().from_cfg(cfg)
        finally:
            _VERBOSE.reset(token)

    def build_log_processor(self, log_processor: Any) -> Any:
        # mmengine has just named the experiment <config>_<second>; that name keys the process-wide logger, message
        # hub and visualiser, so a second run started in the same second of one process (tests, a study) would
        # log into the first run's file and carry its scalars: give it a name of its own first
        base, n = self._experiment_name, 1
        while any(cls.check_instance_created(self._experiment_name) for cls in (MMLogger, MessageHub, Visualizer)):
            n += 1
            self._experiment_name = f"{base}_{n}"
        return super().build_log_processor(log_processor)

    def build_logger(self, log_level: int | str = "INFO", log_file: str | None = None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        if not _VERBOSE.get():
            for handler in logger.handlers:
                if not isinstance(handler, logging.FileHandler) and not any(
                        isinstance(f, ConsoleNoiseFilter) for f in handler.filters):
                    handler.addFilter(ConsoleNoiseFilter())
            log = osp.join(self._log_dir, f"{self._timestamp}.log")
            logger.info(f"environment and config are in {log} (--verbose prints them here too)")
        return logger

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, meta: dict | None = None, **kwargs) -> None:
        meta = dict(meta or {})
        if self.cfg.filename:  # which config made it, for the message when it is loaded into another
            meta.setdefault("config_file", osp.abspath(self.cfg.filename))
        partial = f"{filename}.partial"
        try:
            super().save_checkpoint(out_dir, partial, *args, meta=meta, **kwargs)
            os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk: leave the last good checkpoint and no half file
                os.remove(osp.join(out_dir, partial))
            raise

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == "before_save_checkpoint":  # the last step before mmengine writes the file
            self._store_as_data(kwargs["checkpoint"])

    @functools.cached_property
    def _config_text(self) -> tuple[str | None, str | None]:
        """The run's config as YAML and its format tag, dumped once: it does not change while the run lasts."""
        try:
            return config_as_yaml(self.cfg), YAML_FORMAT
        except Exception as err:  # noqa: BLE001 - never lose a checkpoint over the config's description
            self.logger.warning(f"the config could not be stored with the checkpoint ({err})")
            return None, None

    def _store_as_data(self, checkpoint: dict) -> None:
        """Make the checkpoint loadable with ``weights_only=True``: the config as YAML text instead of Python source,
        the message hub's histories as arrays instead of objects that pickle bound methods."""
        text, fmt = self._config_text
        checkpoint["meta"].update({"cfg": text, FORMAT_KEY: fmt})
        hub = checkpoint.get("message_hub") or {}
        if "cfg" in hub.get("runtime_info", {}):
            hub["runtime_info"]["cfg"] = text
        hub["log_scalars"] = {key: history_as_data(value) for key, value in hub.get("log_scalars", {}).items()}

    def load_checkpoint(self, filename: str, map_location: Any = "cpu", strict: bool = False,
                        revise_keys: list = [(r"^module.", "")]) -> dict:  # noqa: B006 - mmengine's signature
        """mmengine's ``load_checkpoint``, for any weights source (:func:`~visionmix.checkpoint_io.
        as_training_checkpoint`), with the fit check before any hook or module sees the tensors."""
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        if self._resume:
            hub = checkpoint.get("message_hub") or {}
            hub["log_scalars"] = {k: history_from_data(v) for k, v in hub.get("log_scalars", {}).items()}
        else:
            checkpoint = as_training_checkpoint(checkpoint, filename)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        shapes = shapes_of(model.state_dict())
        note = check_fits(shapes, checkpoint, filename, strict=self._resume)
        if note:
            self.logger.warning(note)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        super().resume(filename, *args, **kwargs)
        if self.optimizer_overrides:
            apply_optimizer_overrides(self, self.optimizer_overrides)


def history_as_data(buffer: Any) -> Any:
    """A message-hub ``HistoryBuffer`` as plain arrays (its pickle names bound methods through ``getattr``)."""
    if not isinstance(buffer, HistoryBuffer):
        return buffer
    return {"history_buffer": {"log_history": buffer._log_history, "count_history": buffer._count_history,
                               "max_length": buffer.max_length}}


def history_from_data(value: Any) -> Any:
    """:func:`history_as_data` undone."""
    if isinstance(value, dict) and isinstance(value.get("history_buffer"), dict):
        fields = value["history_buffer"]
        return HistoryBuffer(fields["log_history"], fields["count_history"], int(fields["max_length"]))
    return value


def optimizer_overrides(cfg_options: Mapping[str, Any] | None, prefix: str = "optim_wrapper.optimizer.") -> dict:
    """The optimiser hyperparameters among ``--cfg-options`` (``optim_wrapper.optimizer.lr=...`` -> ``lr``)."""
    return {key[len(prefix):]: value for key, value in (cfg_options or {}).items()
            if key.startswith(prefix) and "." not in key[len(prefix):] and key != prefix + "type"}


def apply_optimizer_overrides(runner: Runner, overrides: Mapping[str, Any]) -> None:
    """Set explicit hyperparameters on a resumed optimiser (whose state dict brought the old ones back).

    ``lr`` is the base learning rate: the current one is scaled by new/old base (a schedule mid-way keeps its
    shape), ``initial_lr`` and the schedulers' ``base_values`` follow.
    """
    groups = runner.optim_wrapper.param_groups
    schedulers = runner.param_schedulers or []
    schedulers = [s for v in schedulers.values() for s in v] if isinstance(schedulers, dict) else list(schedulers)
    for key, value in overrides.items():
        if key not in groups[0]:
            runner.logger.warning(f"resume: optim_wrapper.optimizer.{key} is not a parameter-group setting; "
                                  "it only applies when the optimiser is built")
            continue
        before = groups[0][key]
        for group in groups:
            if key == "lr":
                base = group.get("initial_lr", group["lr"])
                group["lr"] = group["lr"] * value / base if base else value
                group["initial_lr"] = value
            else:
                group[key] = value
        for scheduler in schedulers:
            if getattr(scheduler, "param_name", None) == key:
                scheduler.base_values = [value for _ in groups]
                scheduler._last_value = [group[key] for group in groups]
        what = "learning rate" if key == "lr" else f"optimizer {key}"
        runner.logger.info(f"resume: {what} set to {groups[0][key]:g} from --cfg-options (checkpoint had {before:g})"
                           if isinstance(value, (int, float)) else
                           f"resume: {what} set to {value} from --cfg-options (checkpoint had {before})")
