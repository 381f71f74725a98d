"""``python tools/benchmark_wkv.py`` = ``visionmix benchmark-wkv`` (visionmix/commands/benchmark_wkv.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("benchmark_wkv", prog="tools/benchmark_wkv.py"))
