"""Check a training config against what its components accept, before anything is built.

``check_config(cfg)`` runs after ``load_config`` and the command line's overrides, before the Runner: a
misspelt argument (``default_hooks.checkpoint.intervl``) would otherwise vanish into a ``**kwargs`` or fail
hours later, at the first checkpoint. Each component's class is resolved (no model is built, no dataset
read) and the config's keys are matched against its ``__init__``; ``**kwargs`` are followed to where they
go (the base class's ``__init__``, EMAHook's averaged model).

A top-level key that neither mmengine's Runner nor visionmix reads is an error (``trian_cfg`` is a typo,
not a new setting) unless the config declares it: ``user_keys = ["my_var", ...]``. Names a ``.py`` config
imports (classes, functions, modules) and names starting with ``_`` are not keys. String types must be
registered names or allowed classes (:mod:`visionmix.allowlist`); only a ``.py`` config or the command line can
widen that list (see :mod:`visionmix.config`).
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import PurePath
from typing import Any, Iterable, Iterator, Mapping

from mmengine.config import Config
from mmengine.hooks import CheckpointHook, EMAHook, LoggerHook
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import (DATA_SAMPLERS, DATASETS, FUNCTIONS, HOOKS, LOG_PROCESSORS, LOOPS, MODEL_WRAPPERS,
                               OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS, VISBACKENDS,
                               VISUALIZERS)
from mmengine.registry import MODELS as MM_MODELS
from mmengine.runner import Runner
from mmengine.visualization import BaseVisBackend, Visualizer
from torch.utils.data import DataLoader

from .config import ConfigError, check_types, config_strings
from .engine import SampleGridHook
from .models import DiffusionModel
from .models.diffusion_model import SAMPLING_OPTIONS
from .registry import (BACKBONES, CONTRACT_ARGS, FFNS, MIXERS, OBJECTIVES, Registry, UnknownComponentError,
                       UntrustedTypeError, all_registries, as_config, check_options, lookup, parse_spec, resolve_type)

# read by the Runner through self.cfg.get (mmengine 0.10), besides Runner.__init__'s arguments
RUNNER_CFG_KEYS = ("model_wrapper_cfg", "sync_bn", "find_unused_parameters", "activation_checkpointing",
                   "efficient_conv_bn_eval", "compile")
# visionmix's own: plugin imports, the two declarations above, the dataset configs' shared paths
VISIONMIX_KEYS = ("custom_imports", "user_keys", "trusted_type_prefixes", "data_root", "vae_root")
# what DiffusionModel.sample accepts (it refuses other keys, but only when the first sample grid is drawn)
ENV_KEYS = ("cudnn_benchmark", "mp_cfg", "dist_cfg", "resource_limit")  # what Runner.setup_env reads
SKIP, _ALL = ("type", "_scope_"), object()  # keys every mmengine build pops; _ALL: "read the signature"


def check_config(cfg: Config) -> None:
    """Raise :class:`ConfigError` at the first unknown top-level key, untrusted type, unknown argument, or path that
    would make the run write outside its work dir."""
    check_top_level(cfg)
    check_types(cfg)
    for key in ("default_hooks", "custom_hooks"):  # a dict of named hooks or a list; None disables a default
        hooks = cfg.get(key) or {}
        for name, hook in hooks.items() if isinstance(hooks, Mapping) else enumerate(hooks):
            if isinstance(hook, Mapping):
                _check_hook(f"{key}.{name}" if isinstance(hooks, Mapping) else f"{key}[{name}]", hook)
    if isinstance(cfg.get("optim_wrapper"), Mapping):
        _check_optim(cfg.optim_wrapper)
    for where, sched in _entries("param_scheduler", cfg.get("param_scheduler")):
        _check_args(where, _resolve(PARAM_SCHEDULERS, sched.get("type"), where), sched,
                    extra=("convert_to_iter_based",), bound=("optimizer",))
    for split in ("train", "val", "test"):
        _check_loader(f"{split}_dataloader", cfg.get(f"{split}_dataloader"))
        _check_loop(f"{split}_cfg", cfg.get(f"{split}_cfg"))
    _check_model(cfg.get("model"))
    _check_visualizer(cfg.get("visualizer"))
    for key, registry, default in (("log_processor", LOG_PROCESSORS, "LogProcessor"),
                                   ("model_wrapper_cfg", MODEL_WRAPPERS, None)):
        if isinstance(cfg.get(key), Mapping):
            _check_args(key, _resolve(registry, cfg[key].get("type", default), key), cfg[key], bound=("module",))
    for key, target, accepted in (("randomness", Runner.set_randomness, _ALL),
                                  ("env_cfg", "Runner.setup_env", ENV_KEYS)):
        if isinstance(cfg.get(key), Mapping):
            _check_args(key, target, cfg[key], accepted=accepted)


def known_top_level_keys(cfg: Config) -> set[str]:
    """What the Runner reads (its ``from_cfg`` arguments and ``cfg.get`` keys), visionmix's keys, ``user_keys``."""
    runner = set(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"}
    return runner | set(RUNNER_CFG_KEYS) | set(VISIONMIX_KEYS) | set(config_strings(cfg, "user_keys"))


def check_top_level(cfg: Config) -> None:
    """Refuse a top-level key nothing reads: a typo there (``trian_cfg``) silently trains with the defaults."""
    known = known_top_level_keys(cfg)
    for key, value in cfg.items():
        imported = inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value)  # by a .py config
        if not (key in known or key.startswith("_") or imported):
            raise ConfigError(f"unknown top-level config key {key!r}{_hint(key, known)}; "
                              "declare your own variables in user_keys = [...]")


def accepted_args(obj: Any) -> set[str] | None:
    """Keyword arguments ``obj(...)`` takes, following ``**kwargs`` up the MRO to the ``__init__`` they feed
    (AmpOptimWrapper -> OptimWrapper, LinearLR -> LinearParamScheduler); None when anything may go."""
    inits = [vars(k)["__init__"] for k in obj.__mro__ if "__init__" in vars(k)] if inspect.isclass(obj) else [obj]
    names: set[str] = set()
    open_kwargs = False
    for init in inits:
        if init is object.__init__:
            return None if open_kwargs else names
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):  # a builtin without a signature: cannot tell
            return None
        names |= {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return names
        open_kwargs = True
    return None


def _hint(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _entries(where: str, node: Any) -> Iterator[tuple[str, Mapping]]:
    """Component dicts in a list or a dict of named ones (hooks, per-optimizer schedulers); None disables one."""
    if isinstance(node, Mapping) and "type" in node:
        yield where, node
    elif isinstance(node, (Mapping, list, tuple)):
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in items:
            yield from _entries(f"{where}.{key}" if isinstance(node, Mapping) else f"{where}[{key}]", value)


def _as_config(where: str, spec: Any) -> dict:
    try:
        return parse_spec(spec) if isinstance(spec, str) else as_config(spec)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _resolve(registry: Registry, type_: Any, where: str) -> Any:
    try:
        return resolve_type(registry, type_)
    except (UnknownComponentError, UntrustedTypeError, TypeError) as err:
        other = [reg.name for reg in all_registries() if isinstance(type_, str) and lookup(reg, type_) is not None]
        note = f" ({type_!r} is a registered {other[0]}: name it by class or dotted path)" if other else ""
        raise ConfigError(f"{where}: {err}{note}") from None


def _check_args(where: str, target: Any, args: Mapping, accepted: Any = _ALL, extra: Iterable[str] = (),
                bound: Iterable[str] = (), detail: str | None = None) -> None:
    """Raise naming the first key of ``args`` that ``target`` (a class, function or name) does not accept."""
    if accepted is _ALL:
        accepted = accepted_args(target)
    if accepted is None:
        return
    accepted = (set(accepted) | set(extra)) - set(bound)
    unknown = [key for key in args if key not in accepted and key not in SKIP]
    if unknown:
        name = target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))
        more = f"\nalso unknown: {', '.join(map(repr, unknown[1:]))}" if unknown[1:] else ""
        raise ConfigError(f"{where} ({name}) has no argument {unknown[0]!r}{_hint(unknown[0], accepted)}{more}\n"
                          + (detail or f"{name} accepts: {', '.join(sorted(accepted)) or '(nothing)'}"))


def _check_hook(where: str, hook: Mapping) -> None:
    cls = _resolve(HOOKS, hook.get("type"), where)
    accepted = accepted_args(cls)
    if inspect.isclass(cls) and issubclass(cls, (EMAHook, CheckpointHook)):
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        if issubclass(cls, EMAHook):  # **kwargs build the averaged model; CheckpointHook's fill nothing new
            ema = _resolve(MM_MODELS, hook.get("ema_type", "ExponentialMovingAverage"), f"{where}.ema_type")
            ema_args = accepted_args(ema)
            accepted = None if ema_args is None else accepted | ema_args - {"model"}
    _check_args(where, cls, hook, accepted=accepted, extra=("priority",))
    if inspect.isclass(cls):
        _check_paths(where, cls, hook)
    if inspect.isclass(cls) and issubclass(cls, SampleGridHook) and isinstance(hook.get("sampling"), Mapping):
        _check_args(f"{where}.sampling", "DiffusionModel.sample", hook["sampling"], accepted=SAMPLING_OPTIONS)


# options that name where a part writes. mmengine resolves folders against the current directory, not the work dir,
# so they are refused outright; file names must stay inside the work dir (relative, no "..")
WRITTEN_FOLDERS = {CheckpointHook: ("out_dir",), LoggerHook: ("out_dir",), Visualizer: ("save_dir",),
                   BaseVisBackend: ("save_dir",)}
WRITTEN_NAMES = {CheckpointHook: ("filename_tmpl",)}


def _check_paths(where: str, cls: type, options: Mapping) -> None:
    """A config must not make a run write outside its work dir (``filename_tmpl: /home/me/.bashrc``)."""
    for base, keys in WRITTEN_FOLDERS.items():
        for key in keys:
            if issubclass(cls, base) and options.get(key) is not None:
                raise ConfigError(f"{where}.{key}={options[key]!r}: a config cannot choose where a run writes; "
                                  "everything goes under the work dir: remove it and pass --work-dir DIR")
    for base, keys in WRITTEN_NAMES.items():
        for key in keys:
            value = options.get(key)
            if issubclass(cls, base) and isinstance(value, str) and (
                    PurePath(value).is_absolute() or ".." in PurePath(value).parts or value.startswith("~")):
                raise ConfigError(f"{where}.{key}={value!r}: file names stay inside the work dir: give a relative "
                                  "name without '..' (e.g. 'iter_{}.pth'); choose the folder with --work-dir DIR")


def _check_visualizer(visualizer: Any) -> None:
    if not isinstance(visualizer, Mapping):
        return
    cls = _resolve(VISUALIZERS, visualizer.get("type", "Visualizer"), "visualizer")
    if inspect.isclass(cls):
        _check_paths("visualizer", cls, visualizer)
    for i, backend in enumerate(visualizer.get("vis_backends") or []):
        if isinstance(backend, Mapping):
            here = f"visualizer.vis_backends[{i}]"
            backend_cls = _resolve(VISBACKENDS, backend.get("type"), here)
            if inspect.isclass(backend_cls):
                _check_paths(here, backend_cls, backend)


def _check_optim(wrapper: Mapping) -> None:
    where = "optim_wrapper"
    ctor = wrapper.get("constructor", "DefaultOptimWrapperConstructor")
    if _resolve(OPTIM_WRAPPER_CONSTRUCTORS, ctor, f"{where}.constructor") is not DefaultOptimWrapperConstructor:
        return  # a custom constructor reads its config its own way
    cls = _resolve(OPTIM_WRAPPERS, wrapper.get("type", "OptimWrapper"), where)
    _check_args(where, cls, wrapper, extra=("constructor", "paramwise_cfg"))
    if isinstance(wrapper.get("optimizer"), Mapping):
        opt, where = wrapper["optimizer"], f"{where}.optimizer"
        _check_args(where, _resolve(OPTIMIZERS, opt.get("type"), where), opt, bound=("params",))


def _check_loader(where: str, loader: Any) -> None:
    if not isinstance(loader, Mapping):
        return
    _check_args(where, DataLoader, loader, extra=("num_batch_per_epoch", "disable_subprocess_warning"))
    if isinstance(loader.get("dataset"), Mapping):
        _check_dataset(f"{where}.dataset", loader["dataset"])
    for key, registry, bound in (("sampler", DATA_SAMPLERS, ("dataset",)), ("batch_sampler", DATA_SAMPLERS,
                                 ("sampler",)), ("collate_fn", FUNCTIONS, ()), ("worker_init_fn", FUNCTIONS, ())):
        if isinstance(loader.get(key), Mapping):
            here = f"{where}.{key}"
            _check_args(here, _resolve(registry, loader[key].get("type"), here), loader[key], bound=bound)


def _check_dataset(where: str, dataset: Mapping) -> None:
    _check_args(where, _resolve(DATASETS, dataset.get("type"), where), dataset)
    for here, inner in _entries(where, {"dataset": dataset.get("dataset"), "datasets": dataset.get("datasets")}):
        _check_dataset(here, inner)  # dataset wrappers (RepeatDataset, ConcatDataset)


def _check_loop(where: str, loop: Any) -> None:
    if not isinstance(loop, Mapping):
        return
    if "type" in loop or where != "train_cfg":
        default = {"val_cfg": "ValLoop", "test_cfg": "TestLoop"}.get(where)
        cls, extra = _resolve(LOOPS, loop.get("type", default), where), ()
    elif "by_epoch" in loop:
        cls, extra = LOOPS.get("EpochBasedTrainLoop" if loop["by_epoch"] else "IterBasedTrainLoop"), ("by_epoch",)
    else:
        raise ConfigError(f"{where} needs a 'type' (e.g. IterBasedTrainLoop) or 'by_epoch'")
    _check_args(where, cls, loop, extra=extra, bound=("runner", "dataloader", "evaluator"))


def _check_model(model: Any) -> None:
    if not isinstance(model, Mapping):
        return
    cls = _resolve(MM_MODELS, model.get("type"), "model")  # the Runner builds it through mmengine's MODELS
    _check_args("model", cls, model)
    if not (inspect.isclass(cls) and issubclass(cls, DiffusionModel)):
        return
    if model.get("backbone") is not None:
        backbone = _as_config("model.backbone", model["backbone"])
        _check_args("model.backbone", _resolve(BACKBONES, backbone.pop("type"), "model.backbone"), backbone)
        for key, registry in (("mixer", MIXERS), ("ffn", FFNS)):
            if backbone.get(key) is not None:
                _check_part(f"model.backbone.{key}", registry, backbone[key])
    if model.get("diffusion") is not None:
        diffusion = _as_config("model.diffusion", model["diffusion"])
        _check_args("model.diffusion", _resolve(OBJECTIVES, diffusion.pop("type"), "model.diffusion"), diffusion)
    if isinstance(model.get("data_preprocessor"), Mapping):  # BaseModel builds it through mmengine's MODELS
        pre, where = model["data_preprocessor"], "model.data_preprocessor"
        _check_args(where, _resolve(MM_MODELS, pre.get("type", "BaseDataPreprocessor"), where), pre)
    if isinstance(model.get("sampling"), Mapping):
        _check_args("model.sampling", "DiffusionModel.sample", model["sampling"], accepted=SAMPLING_OPTIONS)


def _check_part(where: str, registry: Registry, spec: Any) -> None:
    """A mixer or FFN: registry.check_options decides (contract args, **kwargs); this names the place."""
    options = _as_config(where, spec)
    cls = _resolve(registry, options.pop("type"), where)
    try:
        check_options(registry, cls, options)
    except TypeError as err:
        params = set(inspect.signature(cls).parameters)
        _check_args(where, cls, options, accepted=params - set(CONTRACT_ARGS), detail=str(err))
        raise ConfigError(f"{where}: {err}") from None
