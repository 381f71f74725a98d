"""The ``visionmix`` command line: ``visionmix <command> [options]`` (or ``python -m visionmix``).

Each command is a module here with ``main(argv)``; ``tools/<command>.py`` in a checkout runs the same command.
``visionmix --help`` lists the commands with the first line of each module's docstring, read from the source so
that nothing heavy (torch, mmengine) is imported to answer it.
"""
from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import re
import sys
from typing import Optional, Sequence

from ..cli import run_tool

COMMANDS = ("train", "sample", "eval", "eval_digits", "compare", "benchmark", "benchmark_wkv", "flops", "convert",
            "zoo", "extract_latents")


def summary(name: str) -> str:
    """The first sentence of command ``name``'s docstring (read from its source, not imported), markup removed."""
    spec = importlib.util.find_spec(f"{__name__}.{name}")
    with open(spec.origin) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")
    return re.split(r"(?<=[.:;])\s", paragraph, maxsplit=1)[0].rstrip(".:;")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.replace('_', '-'):<{width}}  {summary(name)}" for name in COMMANDS]
    return ("usage: visionmix <command> [options]   (visionmix <command> --help for its options)\n\n"
            "Interchangeable token mixers in shared diffusion scaffolds.\n\ncommands:\n" + "\n".join(lines))


def run(name: str, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run command ``name`` on ``argv`` under the tools' error conventions (:func:`visionmix.cli.run_tool`)."""
    module = importlib.import_module(f"{__name__}.{name}")
    sys.argv[0] = prog or f"visionmix {name.replace('_', '-')}"  # what argparse prints as the program
    return run_tool(module.main, list(sys.argv[1:] if argv is None else argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from .. import __version__

        print(f"visionmix {__version__}")
        return 0
    name = argv[0].replace("-", "_")
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
        print(f"error: unknown command {argv[0]!r}{hint}; commands: "
              f"{', '.join(c.replace('_', '-') for c in COMMANDS)}", file=sys.stderr)
        return 2
    return run(name, argv[1:])
