"""``python tools/sample.py`` = ``visionmix sample`` (visionmix/commands/sample.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("sample", prog="tools/sample.py"))
