"""``python tools/flops.py`` = ``visionmix flops`` (visionmix/commands/flops.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("flops", prog="tools/flops.py"))
