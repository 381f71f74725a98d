"""The config a checkpoint carries, kept as data.

mmengine stores ``cfg.pretty_text`` (Python source) in every checkpoint's ``meta["cfg"]`` and the message hub, and
its ``Runner.resume`` executes ``meta["config"]`` with ``Config.fromstring(..., ".py")``: a checkpoint that passes
``weights_only=True`` could still run code through its config. visionmix writes the config as a YAML dump
(``meta["cfg_format"] = "yaml"``), reads it back with the bounded safe loader, and reads the Python text of older
checkpoints by parsing literals only (``ast``: nothing is executed, unknown expressions are left out).
"""
from __future__ import annotations

import ast
import os
import tempfile
from typing import Any, Mapping

from . import safe_yaml

FORMAT_KEY, YAML_FORMAT = "cfg_format", "yaml"


def config_as_yaml(cfg: Any) -> str:
    """``cfg`` (an mmengine Config) as YAML text: classes become their import paths, as ``Config.dump`` writes them."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "config.yaml")
        cfg.dump(path)
        with open(path) as f:
            return f.read()


def read_stored_config(meta: Mapping[str, Any]) -> dict | None:
    """The config dict stored in a checkpoint's ``meta``, read without executing anything; None when absent or
    unreadable (it is a nicety: messages still work with the config's file name alone)."""
    text = meta.get("cfg")
    if not isinstance(text, str) or len(text) > safe_yaml.MAX_BYTES:
        return None
    try:
        if meta.get(FORMAT_KEY) == YAML_FORMAT:
            data = safe_yaml.load(text, "the config stored in the checkpoint")
            return data if isinstance(data, dict) else None
        return python_literals(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        return None


def python_literals(source: str) -> dict:
    """Top-level ``name = value`` assignments of Python config text whose values are literals, ``dict(...)`` calls
    of literals, or names / dotted names (kept as strings: ``type=EMAHook`` reads as ``"EMAHook"``). Parsed, never
    run; anything else is left out."""
    found: dict[str, Any] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            try:
                found[statement.targets[0].id] = _literal(statement.value)
            except ValueError:
                continue
    return found


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):  # {**other}: not a literal
            raise ValueError("dict unpacking")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError("dict(**other)")
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _literal(node.value)
        if isinstance(base, str):
            return f"{base}.{node.attr}"
    raise ValueError(f"not a literal: {type(node).__name__}")
