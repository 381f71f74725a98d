"""``python tools/zoo.py`` = ``visionmix zoo`` (visionmix/commands/zoo.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("zoo", prog="tools/zoo.py"))
