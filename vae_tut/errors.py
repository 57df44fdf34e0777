"""Errors for bad input or bad files: each a one-line message, which the command line prints instead of a traceback."""

from __future__ import annotations


class VaeTutError(Exception):
    """Base class: a problem the user can fix, explained in one line."""


class ConfigError(VaeTutError, ValueError):
    """A run setting is out of range or unknown (e.g. ``z <= 0``)."""


class DataError(VaeTutError):
    """A data set is missing, or one of its files is wrong or truncated."""


class CacheError(VaeTutError):
    """A cached run cannot be trusted (unreadable, or made for another config)."""


class TrainingDiverged(VaeTutError, FloatingPointError):
    """The loss became NaN or infinite during training."""
