"""visionmix's modules depend on each other one way: no import cycle, function-local imports included.

Each module's imports are read from its source (``import``/``from`` statements anywhere in the file, and
``importlib.import_module`` with a literal name). Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so an
import adds an edge to the target and to each package above it that is not already above the importer. A cycle
is a strongly connected set of two or more modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "visionmix"


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name ``module`` imports (absolute), relative imports resolved."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names.update(f"{stem}.{alias.name}" for alias in node.names)
            names.add(stem)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            target = node.args[0].value
            if target.startswith("."):
                anchor = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else module
                target = f"{anchor}{target}"
            names.add(target)
    return names


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        own_ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for name in imported_names(module, path):
            while name and name not in files:  # "pkg.mod.Class" -> "pkg.mod"
                name = name.rpartition(".")[0]
            if not name or name == module:
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in files and target not in own_ancestors and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of two or more modules (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_local_imports_are_read(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\nfrom ..other import thing\n\ndef f():\n    from .late import x\n"
                      "    importlib.import_module('.dyn', 'visionmix.pkg')\n")
    names = imported_names("visionmix.pkg.mod", source)
    assert {"visionmix.pkg.sibling", "visionmix.other.thing", "visionmix.pkg.late.x", "visionmix.pkg.dyn"} <= names


def test_visionmix_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 80 and any(graph.values())
    assert cycles(graph) == []
