"""YAML read as data, within bounds.

``yaml.safe_load`` constructs no Python objects, but a kilobyte of anchors and aliases (``a: &a [x, x]``,
``b: &b [*a, *a]``, ...) describes a tree of 2^k nodes: PyYAML builds it with shared references in no time, and
then every walk over the result (config checks, ``Config``'s conversion to ConfigDict, a deep copy) pays for the
whole expansion -- 12 s and 1.2 GB at 2^16 nodes. :func:`load` therefore composes the node graph first and counts
the nodes of its expansion (memoised, so the count itself is linear in the text), refusing a document larger than
:data:`MAX_BYTES` or expanding to more than :data:`MAX_NODES` nodes, and recursive aliases, before anything is
constructed. Every YAML file visionmix reads (configs, the zoo table, the config stored in a checkpoint) goes
through here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4 << 20  # configs are a few KB, the zoo table ~15 KB
MAX_NODES = 200_000  # a config dump has ~500 nodes; the zoo table ~2,000


class YAMLLimitError(ValueError):
    """A YAML document that is too large, expands too far through aliases, or refers to itself."""


def load(text: str | bytes, source: str = "<string>", *, max_bytes: int = MAX_BYTES,
         max_nodes: int = MAX_NODES) -> Any:
    """The plain data (dicts, lists, str, numbers, bools, None, dates) of one YAML document, or raise
    :class:`YAMLLimitError` naming ``source`` and the limit; ``yaml.YAMLError`` for malformed text."""
    if len(text) > max_bytes:
        raise YAMLLimitError(f"{source}: {len(text):,} bytes of YAML, more than the {max_bytes:,} a config or table "
                             "may have")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    loader = yaml.SafeLoader(text)
    loader.name = source  # error marks name the file, not "<unicode string>"
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YAMLLimitError(f"{source}: YAML nested too deeply to read") from None
        if node is None:
            return None
        expanded = expanded_size(node, max_nodes, source)
        if expanded > max_nodes:
            raise YAMLLimitError(f"{source}: its aliases expand to more than {max_nodes:,} nodes (an alias bomb?); "
                                 "write the repeated parts out or use fewer anchors")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_file(path: str | Path, **limits: int) -> Any:
    """:func:`load` of a file; the size limit is checked before the file is read."""
    path = Path(path)
    max_bytes = limits.get("max_bytes", MAX_BYTES)
    if path.stat().st_size > max_bytes:
        raise YAMLLimitError(f"{path}: {path.stat().st_size:,} bytes of YAML, more than the {max_bytes:,} a config "
                             "or table may have")
    return load(path.read_bytes(), str(path), **limits)


def expanded_size(root: yaml.Node, limit: int, source: str = "<string>") -> int:
    """Nodes in the tree ``root`` stands for once every alias is expanded (stops counting past ``limit``).

    An alias is the same node object as its anchor, so sizes are memoised by identity; a node met again while its
    own size is being counted is a recursive alias, which expands without end."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(child)] for child in _children(node)))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YAMLLimitError(f"{source}, line {node.start_mark.line + 1}: a recursive alias (a node that contains "
                                 "itself)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
