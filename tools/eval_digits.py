"""``python tools/eval_digits.py`` = ``visionmix eval-digits`` (visionmix/commands/eval_digits.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("eval_digits", prog="tools/eval_digits.py"))
