"""``python -m vae_tut``: see :mod:`vae_tut.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
