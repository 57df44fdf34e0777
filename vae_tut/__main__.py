"""``python -m vae_tut``: see :mod:`vae_tut.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
