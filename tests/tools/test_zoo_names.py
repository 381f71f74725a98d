"""Every ``zoo:NAME`` the tools' help texts, docstrings and the README name is a row of the zoo table."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.tools.helpers import ROOT, tool_env
from visionmix.hub import list_models

NAME = re.compile(r"zoo:([a-z][a-z0-9_]*)")  # lower case: zoo:NAME is the placeholder
SOURCES = sorted(ROOT.glob("tools/*.py")) + sorted(ROOT.glob("visionmix/commands/*.py")) + [ROOT / "README.md"]


def mentions() -> list[tuple[str, str]]:
    """(file, name) for every zoo name in a tool's source (its help strings and docstrings) or the README."""
    return [(str(path.relative_to(ROOT)), name) for path in SOURCES for name in NAME.findall(path.read_text())]


def test_the_scan_finds_the_examples():
    assert ("README.md", "drwkv_digits") in mentions() and ("visionmix/commands/eval_digits.py", "drwkv_digits") in mentions()


@pytest.mark.parametrize("source,name", sorted(set(mentions())))
def test_every_zoo_name_mentioned_is_in_the_table(source, name):
    known = list_models()
    assert name in known, f"{source} names zoo:{name}, which is not in the zoo table ({', '.join(known)})"


def test_eval_digits_help_names_a_zoo_row():
    run = subprocess.run([sys.executable, "tools/eval_digits.py", "--help"], cwd=ROOT, env=tool_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    names = NAME.findall(run.stdout)
    assert names and set(names) <= set(list_models())
