"""``python tools/eval.py`` = ``visionmix eval`` (visionmix/commands/eval.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("eval", prog="tools/eval.py"))
