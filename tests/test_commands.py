"""visionmix.commands: ``visionmix <command>`` (and ``python -m visionmix``, ``tools/<command>.py``) runs each command."""
import subprocess
import sys

import pytest

from tests.tools.helpers import ROOT, tool_env
from visionmix import commands


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=tool_env(), capture_output=True, text=True,
                          timeout=300)


def test_help_lists_every_command_with_its_summary_without_importing_torch():
    code = ("import sys\nfrom visionmix.commands import main\nmain(['--help'])\n"
            "print(sorted(m for m in ('torch', 'mmengine') if m in sys.modules))")
    out = run("-c", code)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr
    for name in commands.COMMANDS:
        assert f"  {name.replace('_', '-')} " in out.stdout
    assert "train            Train a diffusion model with the mmengine Runner" in out.stdout


@pytest.mark.subprocess
def test_module_script_and_shim_run_the_same_command():
    via_module = run("-m", "visionmix", "flops", "--help")
    via_shim = run("tools/flops.py", "--help")
    assert via_module.returncode == via_shim.returncode == 0
    assert via_module.stdout.split("\n\n", 1)[1] == via_shim.stdout.split("\n\n", 1)[1]  # the same after usage
    assert run("-m", "visionmix", "--version").stdout.strip().startswith("visionmix ")


def test_unknown_commands_are_named_with_the_known_ones(capsys):
    assert commands.main(["tain"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'tain' (did you mean 'train'?); commands: train, sample, ")
    assert commands.main([]) == 2 and "usage: visionmix <command>" in capsys.readouterr().out


def test_every_command_module_has_main_and_a_shim():
    for name in commands.COMMANDS:
        module = __import__(f"visionmix.commands.{name}", fromlist=["main"])
        assert callable(module.main) and commands.summary(name)
        shim = (ROOT / "tools" / f"{name}.py").read_text()
        assert f'run("{name}", prog="tools/{name}.py")' in shim
