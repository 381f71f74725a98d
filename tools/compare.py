"""``python tools/compare.py`` = ``visionmix compare`` (visionmix/commands/compare.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("compare", prog="tools/compare.py"))
