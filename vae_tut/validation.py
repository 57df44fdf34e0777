"""One way to check a setting: whole numbers, positive numbers, names from a list, on/off flags.

Every public function of the package checks its input through these helpers, so the
same mistake gives the same one-line :class:`~vae_tut.errors.ConfigError` wherever it
is made (the command line prints that line instead of a traceback).
"""

from __future__ import annotations

import math
import os
from typing import Iterable, TypeVar

from .errors import ConfigError

T = TypeVar("T")
SEED_MAX = 2**32 - 1  # torch seeds with the low 32 bits only: larger seeds would alias smaller ones
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def whole(value: object, name: str, least: int = 0, most: int | None = None) -> int:
    """``value`` if it is a whole number from ``least`` to ``most`` (no bool, no float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least \
            or (most is not None and value > most):
        span = f">= {least}" if most is None else f"from {least} to {most}"
        raise ConfigError(f"{name} must be a whole number {span}, got {value!r}")
    return value


def positive(value: object, name: str, most: float | None = None) -> float:
    """``value`` as a float if it is a finite number > 0 (and <= ``most``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    try:
        number = float(value) if ok else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not (math.isfinite(number) and number > 0 and (most is None or number <= most)):
        limit = "" if most is None else f" and <= {most:g}"
        raise ConfigError(f"{name} must be a finite number > 0{limit}, got {value!r}")
    return number


def one_of(value: object, choices: Iterable[T], name: str) -> T:
    """``value`` if it is one of ``choices``; else an error that lists them."""
    options = tuple(choices)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in options:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, options))}")
    return value  # type: ignore[return-value]


def seed(value: object) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (torch would alias larger ones)."""
    return whole(value, "seed", 0, SEED_MAX)


def env_flag(name: str, default: bool) -> bool:
    """The on/off environment variable ``name``: 1/true/yes/on or 0/false/no/off (any case);
    unset or empty means ``default``; anything else is a :class:`ConfigError`."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ConfigError(f"${name}={os.environ[name]!r} is not an on/off value; "
                      f"use one of {', '.join(_ON)} or {', '.join(_OFF)}")
