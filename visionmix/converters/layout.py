"""Declarative key layouts of official checkpoints and the one renaming routine they share.

A :class:`Layout` is a rename table from official state-dict keys to visionmix backbone keys:

* ``names``: single keys, ``official -> target`` (or ``official -> (target, transform)``);
* ``blocks``: repeated groups such as ``blocks.{i}.`` whose count is read from the checkpoint itself
  (1 + the largest index present), each with a per-block suffix table;
* ``optional`` (of the layout, or of a block group): keys that may be absent, e.g. the label table of an
  unconditional model or a bias a config may turn off;
* ``unsupported``: regexes of official keys visionmix has no part for, each with the reason.

From the checkpoint's block counts the layout implies the full official key set, so a file of another
layout is reported by name: which expected keys are missing and which present keys are unexpected.
A transform turns an official tensor into the visionmix one (a reshape); everything else is a rename.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Union

import torch

Transform = Callable[[str, torch.Tensor], torch.Tensor]
Target = Union[str, tuple[str, Transform]]
SHOWN_KEYS = 4  # keys named per list in an error: enough to recognise a layout, short enough to read


class LayoutError(ValueError):
    """A checkpoint that does not have the official key layout the chosen source expects."""


@dataclass(frozen=True)
class Blocks:
    """A repeated group: ``official`` and ``target`` are prefixes holding ``{i}``; ``names`` maps the
    official suffix inside one block to the visionmix suffix."""

    official: str
    target: str
    names: Mapping[str, Target]
    optional: frozenset[str] = frozenset()  # suffixes that may be absent from every block
    min_count: int = 1  # a checkpoint with fewer blocks is missing the keys of block 0

    def count(self, keys: Iterable[str]) -> int:
        head, tail = self.official.split("{i}")
        pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail))
        found = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
        return max(max(found, default=-1) + 1, self.min_count)


@dataclass(frozen=True)
class Layout:
    """The official key layout of one model family; see the module docstring."""

    names: Mapping[str, Target]
    blocks: tuple[Blocks, ...] = ()
    optional: frozenset[str] = frozenset()
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def expected(self, keys: Iterable[str]) -> tuple[dict[str, Target], set[str]]:
        """Every official key this checkpoint should hold (given its block counts) -> its target, and
        the subset of those keys that may be absent."""
        keys = list(keys)
        table, optional = dict(self.names), set(self.optional)
        for group in self.blocks:
            for i in range(group.count(keys)):
                official, target = group.official.format(i=i), group.target.format(i=i)
                table.update(prefixed(group.names, official, target))
                optional.update(official + suffix for suffix in group.optional)
        return table, optional

    def problems(self, state_dict: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """(missing, unexpected) official keys of ``state_dict``."""
        table, optional = self.expected(state_dict)
        missing = [k for k in table if k not in state_dict and k not in optional]
        unexpected = [k for k in state_dict if k not in table]
        return missing, unexpected

    def unsupported_keys(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        """(key, reason) for every key of a part visionmix cannot hold."""
        return [(k, reason) for k in keys for pattern, reason in self.unsupported.items() if re.fullmatch(pattern, k)]

    def rename(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The visionmix backbone state dict; call :meth:`problems` first (unknown keys are skipped here)."""
        out = {}
        for key, target in self.expected(state_dict)[0].items():
            if key not in state_dict:
                continue
            name, transform = (target, None) if isinstance(target, str) else target
            out[name] = transform(key, state_dict[key]) if transform else state_dict[key]
        return out


def prefixed(names: Mapping[str, Target], official: str, target: str) -> dict[str, Target]:
    """A suffix table placed under one official prefix and one target prefix (a single, unindexed block)."""
    return {official + k: _prefix(target, v) for k, v in names.items()}


def weight_bias(official: str, target: str) -> dict[str, str]:
    """``official.{weight,bias} -> target.{weight,bias}``: one renamed Linear / Conv / LayerNorm."""
    return {f"{official}.{p}": f"{target}.{p}" for p in ("weight", "bias")}


def same(*keys: str) -> dict[str, str]:
    """Keys whose visionmix name is the official one."""
    return {k: k for k in keys}


def squeeze_1x1(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution kernel (out, in, 1, 1) as the (out, in) weight of the equivalent Linear."""
    if tensor.ndim != 4 or tuple(tensor.shape[2:]) != (1, 1):
        raise LayoutError(f"{key}: expected a 1x1 convolution kernel (out, in, 1, 1), got shape {tuple(tensor.shape)}")
    return tensor.reshape(tensor.shape[0], tensor.shape[1])


def describe(missing: list[str], unexpected: list[str]) -> str:
    """Counts with the first few keys of each, e.g. ``2 missing (a, b), 1 unexpected (c)``."""
    def show(keys: list[str]) -> str:
        more = f", ... {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
        return ", ".join(keys[:SHOWN_KEYS]) + more

    parts = [f"{len(missing)} missing ({show(missing)})"] if missing else []
    parts += [f"{len(unexpected)} unexpected ({show(unexpected)})"] if unexpected else []
    return ", ".join(parts)


def _prefix(prefix: str, target: Target) -> Target:
    return prefix + target if isinstance(target, str) else (prefix + target[0], target[1])

