"""``python tools/benchmark.py`` = ``visionmix benchmark`` (visionmix/commands/benchmark.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("benchmark", prog="tools/benchmark.py"))
