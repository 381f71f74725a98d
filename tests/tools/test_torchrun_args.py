"""Every option of the tools torchrun launches survives torchrun's own parser.

torchrun's argparse classifies the whole command line, the script's arguments included, and refuses an option
that is an ambiguous prefix of its own (sample.py's old "--num" vs "--numa-binding"), so each tool's main
spelling of an option must not be a prefix of a torchrun option.
"""
from __future__ import annotations

import argparse

import pytest

from tests.tools.helpers import load_tool

run = pytest.importorskip("torch.distributed.run")


def main_spellings(tool_name: str, monkeypatch) -> list[str]:
    captured = {}

    def grab(self, args=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    with pytest.raises(SystemExit):
        load_tool(tool_name).parse_args([])
    monkeypatch.undo()
    actions = captured["parser"]._actions
    return [a.option_strings[0] for a in actions if a.option_strings and a.option_strings[0] not in ("-h", "--help")]


@pytest.mark.parametrize("tool_name", ["train", "sample"])
def test_torchrun_passes_every_option_to_the_script(tool_name, monkeypatch):
    options = main_spellings(tool_name, monkeypatch)
    assert "--launcher" in options and (tool_name != "sample" or "--num-samples" in options)
    for option in options:
        command = ["--nproc_per_node", "2", f"tools/{tool_name}.py", option, "1", "--launcher", "pytorch"]
        parsed = run.get_args_parser().parse_args(command)
        assert parsed.training_script_args[:2] == [option, "1"], option


def test_the_old_spelling_is_what_torchrun_refused(capsys):
    with pytest.raises(SystemExit):
        run.get_args_parser().parse_args(["--nproc_per_node", "2", "tools/sample.py", "--num", "4"])
    assert "ambiguous option: --num" in capsys.readouterr().err
