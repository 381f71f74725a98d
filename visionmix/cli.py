"""Conventions the command-line tools share: one-line errors, exit codes, tracebacks only on request.

    sys.exit(run_tool(main))      # in a tool's ``if __name__ == "__main__":``

Exit codes: 0 success, 1 runtime error, 2 usage error (argparse's own, or :class:`UsageError`), 130 interrupted.
A failure prints ``error: <message>`` (the first lines of the exception) on stderr; ``--debug`` on the command
line or ``VISIONMIX_DEBUG=1`` re-raises it with its traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

MAX_LINES = 6


class UsageError(Exception):
    """A bad command line or argument value: exit code 2."""


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("VISIONMIX_DEBUG", "") not in ("", "0")


def error_message(err: BaseException) -> str:
    """The exception's own text, cut to a few lines (KeyError's quotes removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = text.strip().splitlines() or [type(err).__name__]
    shown = lines[:MAX_LINES] + ([f"... ({len(lines) - MAX_LINES} more lines)"] if len(lines) > MAX_LINES else [])
    return "\n".join(shown)


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run a tool's ``main(argv)`` under the conventions above and return its exit code."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the one place that turns any failure into a short message
        if debug_requested(argv):
            raise
        print(f"error: {error_message(err)}", file=sys.stderr)
        print("(run with --debug or VISIONMIX_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the tools' error format: ``error: ...`` first, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n(see {self.prog} --help)\n")


class CfgOptionsAction(argparse.Action):
    """``KEY=VALUE`` pairs into a dict, values parsed like mmengine's DictAction (imported only when used)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        bad = next((v for v in values if "=" not in v), None)
        if bad is not None:
            parser.error(f"--cfg-options takes KEY=VALUE pairs, got {bad!r}")
        from mmengine.config import DictAction

        options = dict(getattr(namespace, self.dest, None) or {})
        for pair in values:
            key, value = pair.split("=", 1)
            options[key] = DictAction._parse_iterable(value)
        setattr(namespace, self.dest, options)


TRUST_HELP = ("fully unpickle the local --checkpoint, which runs any code inside it: only for files you made "
              "(checkpoints are otherwise read as data: tensors, containers, arrays)")


def trust_checkpoint_if_asked(args: argparse.Namespace) -> None:
    """``--trust-checkpoint``: full unpickling for exactly the ``--checkpoint`` file the user named."""
    if not getattr(args, "trust_checkpoint", False):
        return
    if not args.checkpoint or str(args.checkpoint).startswith("zoo:"):
        raise UsageError("--trust-checkpoint applies to a local --checkpoint file (zoo weights are always read as "
                         "data)")
    from visionmix.checkpoint_io import trust_path

    trust_path(args.checkpoint)


def nearest_folder(path: str) -> str:
    """``path`` if it is a folder, else its closest ancestor that is one (where a run would create it)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def samples_dir(checkpoint: str) -> str:
    """Where a tool writes samples by default: ``samples/NAME`` in the current folder for ``zoo:NAME``; ``samples/``
    beside a local checkpoint, unless that folder belongs to the installed package or cannot be written (then
    ``samples/<checkpoint stem>`` in the current folder)."""
    if checkpoint.startswith("zoo:"):
        return os.path.join("samples", checkpoint[len("zoo:"):])
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(checkpoint)))
    package = os.path.dirname(os.path.abspath(__file__))
    inside_package = os.path.commonpath([folder, package]) == package
    if inside_package or not os.access(folder, os.W_OK):
        return os.path.join("samples", os.path.splitext(os.path.basename(checkpoint))[0])
    return os.path.join(folder, "samples")
