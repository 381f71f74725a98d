"""``python -m visionmix <command> ...``: the same as the ``visionmix`` console script."""
import sys

from .commands import main

sys.exit(main())
