"""What a string in a config may name: the enumerated types a config can construct.

A config string is data. mmengine's ``Registry.get`` imports and returns any dotted path (``"os.system"``), so a
string ``type`` resolves only to something on this list:

- visionmix's own classes (its registries: mixers, FFNs, backbones, models, objectives; its hooks and datasets);
- the mmengine parts a training run is made of, by name (:data:`MMENGINE_PARTS`: hooks, loops, optimiser wrappers,
  EMA models, samplers, collate functions, the log processor, the visualiser with its local and TensorBoard
  backends, dataset wrappers), and every optimiser and parameter scheduler mmengine registers;
- ``torch.nn`` modules and ``torch.optim`` optimisers and LR schedulers; ``timm.layers`` and ``diffusers.models``
  modules (building one from keyword arguments reads no file);
- classes under the packages the *user* trusts: ``trusted_type_prefixes`` or the modules of ``custom_imports``, set
  in a ``.py`` config (which is code, run as such) or on the command line, never by a YAML/JSON file.

Left out on purpose, and refused with the reason: anything that reads a file with a loader that runs code from it
(:data:`UNSAFE_READERS`: mmengine's ``BaseDataset`` unpickles a ``.pkl`` annotation file and reads a ``.yaml`` one
with ``yaml.Loader``), and parts that write wherever a string says (``ProfilerHook``, ``DumpResults``).
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable

# packages a dotted path may be imported from at all (what is found there must then pass allowed())
IMPORTABLE = ("visionmix", "torch.nn", "torch.optim", "mmengine", "timm.layers", "diffusers.models")
MMENGINE_PARTS = frozenset({
    "CheckpointHook", "DistSamplerSeedHook", "EMAHook", "EarlyStoppingHook", "EmptyCacheHook", "IterTimerHook",
    "LoggerHook", "ParamSchedulerHook", "RuntimeInfoHook", "SyncBuffersHook",
    "EpochBasedTrainLoop", "IterBasedTrainLoop", "TestLoop", "ValLoop",
    "AmpOptimWrapper", "OptimWrapper", "DefaultOptimWrapperConstructor",
    "DefaultSampler", "InfiniteSampler", "default_collate", "pseudo_collate", "LogProcessor",
    "MMDistributedDataParallel", "MMFullyShardedDataParallel", "MMSeparateDistributedDataParallel",
    "Visualizer", "LocalVisBackend", "TensorboardVisBackend",
    "ConcatDataset", "RepeatDataset", "ClassBalancedDataset",
    "BaseDataPreprocessor", "ImgDataPreprocessor", "ExponentialMovingAverage", "MomentumAnnealingEMA",
    "StochasticWeightAverage",
})
MODULE_PACKAGES = ("torch.nn", "torch.optim", "timm.layers", "diffusers.models")  # nn.Module subclasses from these
UNSAFE_READERS = {  # (module, class name) -> why it is refused, by class or any subclass outside visionmix
    ("mmengine.dataset.base_dataset", "BaseDataset"):
        "it reads its ann_file with pickle (.pkl) or yaml.Loader (.yaml), which run code from the file; use a "
        "visionmix dataset (visionmix.datasets)",
}
_user_prefixes: set[str] = set()


class UntrustedTypeError(ValueError):
    """A config string named something outside the allow-list; nothing was called."""


def trust_type_prefixes(prefixes: Iterable[str]) -> None:
    """Allow classes under ``prefixes`` from now on, in this process. Call it only for what the user vouched for:
    the command line or a ``.py`` config (see :func:`visionmix.config.load_config`)."""
    _user_prefixes.update(p.strip().rstrip(".") for p in prefixes if p.strip().rstrip("."))


def user_prefixes() -> tuple[str, ...]:
    return tuple(sorted(_user_prefixes))


def _under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether dotted ``path`` lies inside one of ``prefixes`` (whole components: ``torch.nnx`` is not ``torch.nn``)."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def user_trusts(path: str) -> bool:
    """Whether ``path`` lies under a package the user trusts (``trusted_type_prefixes``, ``custom_imports``)."""
    return _under(path, user_prefixes())


def importable(path: str) -> bool:
    """Whether a dotted path may be imported to find out what it names."""
    return _under(path, IMPORTABLE + user_prefixes())


def unsafe_reason(obj: Any) -> str | None:
    """Why ``obj`` must never be built from a config string (it reads files unsafely), or None."""
    if not inspect.isclass(obj) or _under(obj.__module__, ("visionmix",)):
        return None
    for base in inspect.getmro(obj):
        reason = UNSAFE_READERS.get((base.__module__, base.__name__))
        if reason:
            return reason
    return None


def allowed(obj: Any) -> bool:
    """Whether a config string may resolve to ``obj`` (see the module docstring)."""
    if unsafe_reason(obj) is not None:
        return False
    home = getattr(obj, "__module__", None) or ""
    if user_trusts(home):
        return True
    if not inspect.isclass(obj):
        return _is_mmengine_part(obj)
    if _under(home, ("visionmix",)):
        return True
    if _is_mmengine_part(obj):
        return True
    import torch.nn as nn
    import torch.optim as optim

    if _under(home, MODULE_PACKAGES) and issubclass(obj, nn.Module):
        return True
    schedulers = tuple(c for c in (getattr(optim.lr_scheduler, "LRScheduler", None),
                                   getattr(optim.lr_scheduler, "_LRScheduler", None)) if c is not None)
    return _under(home, ("torch.optim",)) and issubclass(obj, (optim.Optimizer, *schedulers))


def _is_mmengine_part(obj: Any) -> bool:
    if not _under(getattr(obj, "__module__", "") or "", ("mmengine",)):
        return False
    if getattr(obj, "__name__", None) in MMENGINE_PARTS:
        return True
    from mmengine.registry import OPTIMIZERS, PARAM_SCHEDULERS

    return any(obj is v for reg in (PARAM_SCHEDULERS, OPTIMIZERS) for v in reg.module_dict.values())


def refusal(name: str, where: str = "", obj: Any = None) -> str:
    """The one message for a refused type string (``where``: its place in the config; ``obj``: what it names)."""
    at = f" at {where}" if where else ""
    reason = unsafe_reason(obj) if obj is not None else None
    if reason:
        return f"type {name!r}{at} is not allowed: {reason}"
    return (f"type {name!r}{at} is not allowed: a config string may name visionmix's components, the mmengine parts "
            "of a training run, torch.nn / torch.optim classes, or classes of packages you trust on the command line "
            "(--cfg-options trusted_type_prefixes=\"['mypkg']\") or in a .py config")
