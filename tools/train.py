"""``python tools/train.py`` = ``visionmix train`` (visionmix/commands/train.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("train", prog="tools/train.py"))
