"""``python tools/convert.py`` = ``visionmix convert`` (visionmix/commands/convert.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("convert", prog="tools/convert.py"))
