import pytest

from visionmix.cli import UsageError, run_tool


def test_runtime_error_is_one_line_and_exit_1(capsys, monkeypatch):
    monkeypatch.delenv("VISIONMIX_DEBUG", raising=False)

    def main(argv):
        raise FileNotFoundError("checkpoint not found: /x.pth")

    assert run_tool(main, []) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: checkpoint not found: /x.pth" and "Traceback" not in "".join(err)


def test_usage_error_exit_2_and_key_error_without_quotes(capsys):
    def usage(argv):
        raise UsageError("--num must be positive, got 0")

    def key(argv):
        raise KeyError("unknown token mixer 'x'")

    assert run_tool(usage, []) == 2
    assert run_tool(key, []) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: --num must be positive, got 0" and err[2] == "error: unknown token mixer 'x'"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_re_raises_with_the_traceback(how, monkeypatch):
    monkeypatch.setenv("VISIONMIX_DEBUG", "1" if how == "env" else "0")

    def main(argv):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_tool(main, ["--debug"] if how == "flag" else [])
