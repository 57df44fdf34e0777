"""The package's input checks: each mistake gives the same one-line :class:`~vae_tut.errors.ConfigError` anywhere."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch

from .errors import ConfigError

T = TypeVar("T")
IMAGE_SHAPE = (1, 28, 28)  # one channel of 28 x 28 pixels, the shape of both data sets (chapter 1)
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def shown(value: object) -> str:
    """``value`` as a one-line message shows it: its repr if short and on one line, else its type."""
    text = repr(value)
    return _kind(value) if "\n" in text or len(text) > 80 else text


def _kind(value: object) -> str:
    kind = f"a {type(value).__module__}.{type(value).__name__}"
    return kind + " (torch.as_tensor(x).float() converts it)" if type(value).__module__ == "numpy" else kind


def whole(value: object, name: str, least: int = 0, most: int | None = None) -> int:
    """``value`` if it is a whole number from ``least`` to ``most`` (no bool, no float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least or (most is not None and value > most):
        span = f">= {least}" if most is None else f"from {least} to {most}"
        raise ConfigError(f"{name} must be a whole number {span}, got {shown(value)}")
    return value


def _number(value: object, name: str, bound: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a finite int or float (no bool) that ``ok`` accepts; else it must be ``bound``."""
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not (math.isfinite(number) and ok(number)):
        raise ConfigError(f"{name} must be a finite number{bound}, got {shown(value)}")
    return number


def positive(value: object, name: str, most: float | None = None) -> float:
    """``value`` as a float if it is a finite number > 0 (and <= ``most``)."""
    limit = "" if most is None else f" and <= {most:g}"
    return _number(value, name, f" > 0{limit}", lambda x: x > 0 and (most is None or x <= most))


def finite(value: object, name: str, least: float | None = None) -> float:
    """``value`` as a float if it is a finite number (and >= ``least``); no bool."""
    return _number(value, name, "" if least is None else f" >= {least:g}", lambda x: least is None or x >= least)


def one_of(value: object, choices: Iterable[T], name: str) -> T:
    """``value`` if it is one of ``choices``; else an error that lists them."""
    options = tuple(choices)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in options:
        raise ConfigError(f"unknown {name} {shown(value)}; choose one of: {', '.join(map(str, options))}")
    return value


def seed(value: object) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (torch would alias larger ones)."""
    return whole(value, "seed", 0, 2**32 - 1)


def flag(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 1, "no" or None: any of them would be read as on or off)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {shown(value)}")
    return value


def env_flag(name: str, default: bool) -> bool:
    """The on/off environment variable ``name`` (1/true/yes/on or 0/false/no/off, any case; unset: ``default``)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw not in ("", *_ON, *_OFF):
        choices = f"{', '.join(_ON)} or {', '.join(_OFF)}"
        raise ConfigError(f"${name}={os.environ[name]!r} is not an on/off value; use one of {choices}")
    return default if raw == "" else raw in _ON


def _strided(value: object, want: str) -> torch.Tensor:
    """``value`` if it is an ordinary (strided, not meta) tensor; else ``want`` and what it got."""
    if not isinstance(value, torch.Tensor):
        raise ConfigError(f"{want}, got {_kind(value)}")
    if value.layout != torch.strided or value.device.type == "meta":
        raise ConfigError(f"{want}, got a {'meta' if value.device.type == 'meta' else 'sparse'} tensor")
    return value


def tensor(
    value: object,
    name: str,
    shape: tuple[int | None, ...],
    *,
    floating: bool = True,
    float32: bool = True,
    rows: int = 1,
    least: float | None = None,
) -> torch.Tensor:
    """``value`` if it is a torch tensor of ``shape`` (``None``: any size) with at least ``rows`` rows:
    finite float32 (any float with ``float32=False``), or integer unless ``floating``, each >= ``least``."""
    dims = ", ".join("N" if i == 0 and d is None else ("*" if d is None else str(d)) for i, d in enumerate(shape))
    kind = ("float32" if float32 else "floating-point") if floating else "integer"
    want = f"{name} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind} tensor [{dims}]"
    value = _strided(value, want)
    if floating and (not value.is_floating_point() or (float32 and value.dtype != torch.float32)):
        hint = " (.float() converts it)" if float32 and value.is_floating_point() else ""
        raise ConfigError(f"{want}, got {value.dtype}{hint}")
    if not floating and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise ConfigError(f"{want}, got {value.dtype}")
    if value.dim() != len(shape) or any(d is not None and s != d for s, d in zip(value.shape, shape)):
        raise ConfigError(f"{want}, got shape {list(value.shape)}")
    if shape and len(value) < rows:
        raise ConfigError(f"{want} with at least {rows} row{'s' if rows > 1 else ''}, got {len(value)}")
    if value.numel() and floating and not bool(torch.isfinite(value).all()):
        raise ConfigError(f"{name} must be finite, got NaN or infinite values")
    if value.numel() and least is not None and float(value.min()) < least:
        raise ConfigError(f"{name} must be >= {least:g} everywhere, got {float(value.min()):g}")
    return value


def images(
    value: object,
    what: str = "images",
    *,
    shape: tuple[int, ...] | None = IMAGE_SHAPE,
    float32: bool = True,
    unit: bool = True,
) -> torch.Tensor:
    """Non-empty float images ``[N, *shape]`` (``None``: any), float32 unless ``float32=False``, in [0, 1] if unit."""
    dims = "N, ..." if shape is None else ", ".join(("N", *map(str, shape)))
    values = "with values in [0, 1]" if unit else "of finite values"
    want = f"{what} must be a {'float32' if float32 else 'float'} tensor [{dims}] {values}"
    value = _strided(value, want)
    if not value.is_floating_point():
        raise ConfigError(f"{want}, got {value.dtype} (divide 0..255 pixels by 255.0)")
    if float32 and value.dtype != torch.float32:
        raise ConfigError(f"{want}, got {value.dtype} (images.float() converts them)")
    if value.dim() < 2 or (shape is not None and tuple(value.shape[1:]) != shape):
        raise ConfigError(f"{want}, got shape {list(value.shape)}")
    if len(value) == 0:
        raise ConfigError(f"{want}, got no images")
    lo, hi = (float(v) for v in torch.aminmax(value.detach()))
    if math.isnan(lo) or math.isnan(hi):
        raise ConfigError(f"{want}, got NaN values")
    if unit and not (0.0 <= lo and hi <= 1.0):
        hint = " (divide 0..255 pixels by 255.0)" if hi > 1.0 else ""
        raise ConfigError(f"{want}, got values from {lo:g} to {hi:g}{hint}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"{want}, got infinite values")
    return value


def codes(
    value: object, name: str = "codes", width: int | None = None, rows: int = 1, least: float | None = None
) -> torch.Tensor:
    """Latent codes: a finite float32 tensor ``[N, width]`` with N >= ``rows`` (and width >= 1)."""
    out = tensor(value, name, (None, width), rows=rows, least=least)
    if out.shape[1] == 0:
        raise ConfigError(f"{name} must have at least one latent dimension, got shape {list(out.shape)}")
    return out


def labels(value: object, n: int, name: str = "labels", classes: int = 10) -> torch.Tensor:
    """Class labels: an integer tensor ``[n]`` of class indices from 0 to ``classes - 1``, one per item."""
    out = tensor(value, name, (None,), floating=False, least=0)
    if len(out) != n:
        raise ConfigError(f"{name} must hold one label per item ({n}), got {len(out)}")
    if len(out) and int(out.max()) >= classes:
        raise ConfigError(f"{name} must be class indices from 0 to {classes - 1}, got {int(out.max())}")
    return out


def same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """A one-line error unless ``a`` and ``b`` have the same shape (``names``: "means and variances")."""
    if a.shape != b.shape:
        raise ConfigError(f"{names} must have the same shape, got {list(a.shape)} and {list(b.shape)}")


def class_names(names: object, n_classes: int) -> list[str]:
    """``names`` as a list if it names every class from 0 to ``n_classes - 1``."""
    if isinstance(names, str) or not isinstance(names, (tuple, list)) or len(names) < n_classes:
        got = f"{len(names)} names" if isinstance(names, (tuple, list)) else repr(names)
        raise ConfigError(f"class_names must name every label (0 to {n_classes - 1}), got {got}")
    return [str(name) for name in names]


def pair(value: object, n: int, name: str = "pair") -> tuple[int, int]:
    """``value`` if it is two whole indices into ``n`` items."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"{name} must be two indices into the images, got {shown(value)}")
    return whole(value[0], f"{name} index", 0, n - 1), whole(value[1], f"{name} index", 0, n - 1)
