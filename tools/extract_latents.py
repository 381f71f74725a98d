"""``python tools/extract_latents.py`` = ``visionmix extract-latents`` (visionmix/commands/extract_latents.py), kept for checkouts."""
import sys

from visionmix.commands import run

if __name__ == "__main__":
    sys.exit(run("extract_latents", prog="tools/extract_latents.py"))
