"""Looking inside a latent space: encoding a data set, decoding grids and paths (chapters 2, 3 and 5-9)."""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError
from .train import eval_mode
from .validation import codes as check_codes
from .validation import finite, positive, tensor, whole
from .validation import images as check_images


def _latent_dim(model: nn.Module) -> int | None:
    dim = getattr(model, "latent_dim", None)
    return dim if isinstance(dim, int) else None


def encode(model: nn.Module, images: torch.Tensor, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior means ``[N, z]`` and variances (``None`` for an autoencoder) of ``images``."""
    check_images(images)
    whole(batch_size, "batch size", 1)
    device = next(model.parameters()).device
    with eval_mode(model):
        parts = [model.encode(batch.to(device)) for batch in images.split(batch_size)]  # type: ignore[operator]
    means = torch.cat([mean.cpu() for mean, _ in parts])
    return means, None if parts[0][1] is None else torch.cat([var.cpu() for _, var in parts])


def decode(model: nn.Module, codes: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Images in [0, 1], ``[N, 1, 28, 28]``, decoded from latent ``codes`` (float32 ``[N, z]``)."""
    check_codes(codes, "codes", _latent_dim(model))
    whole(batch_size, "batch size", 1)
    device = next(model.parameters()).device
    with eval_mode(model):
        decoded = (model.decode(batch.to(device)) for batch in codes.split(batch_size))  # type: ignore[operator]
        images = [torch.sigmoid(logits).cpu() for logits in decoded]  # each batch leaves the device at once
    return torch.cat(images)


def grid_codes(lo: tuple[float, float], hi: tuple[float, float], n: int = 15) -> torch.Tensor:
    """``n * n`` points of a regular 2-D grid from ``lo`` to ``hi``, row by row, top row = highest y."""
    whole(n, "grid size n", 1)
    corners = []
    for corner, name in ((lo, "lo"), (hi, "hi")):
        values = corner.tolist() if isinstance(corner, torch.Tensor) else corner
        if not isinstance(values, (tuple, list)) or len(values) != 2:
            raise ConfigError(f"{name} must be a point (x, y), got {corner!r}")
        corners.append([finite(v, f"{name}'s {axis}") for v, axis in zip(values, "xy")])
    (x0, y0), (x1, y1) = corners
    gy, gx = torch.meshgrid(torch.linspace(y1, y0, n), torch.linspace(x0, x1, n), indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def normal_quantile_codes(n: int = 15, tail: float = 0.05) -> torch.Tensor:
    """A 2-D grid at the N(0, 1) quantiles ``tail .. 1 - tail``: equal steps in probability (chapter 5)."""
    whole(n, "grid size n", 1)
    positive(tail, "tail", most=0.5)
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(tail, 1 - tail, n))
    return grid_codes((float(q[0]), float(q[0])), (float(q[-1]), float(q[-1])), n)


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """``steps`` codes on the straight line from ``a`` to ``b`` (both ends included): two finite vectors
    ``[z]`` (or ``[1, z]``) of one floating type (chapter 1 joins float64 images), which the path keeps."""
    ends = []
    for point, name in ((a, "a"), (b, "b")):
        if isinstance(point, torch.Tensor) and point.dim() == 2 and len(point) == 1:
            point = point[0]
        ends.append(tensor(point, f"end point {name}", (None,), float32=False))
    a, b = ends
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ConfigError(f"a and b differ in shape or type: {list(a.shape)} {a.dtype} vs {list(b.shape)} {b.dtype}")
    whole(steps, "steps", 2)
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    return (1 - t) * a.reshape(1, -1) + t * b.reshape(1, -1)


def extent(codes: torch.Tensor, margin: float = 0.05) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Lower and upper corners of the box holding ``codes``, widened by ``margin`` of its size."""
    check_codes(codes, "codes")
    finite(margin, "margin", 0)
    lo, hi = codes.min(0).values, codes.max(0).values
    pad = (hi - lo) * margin
    return tuple((lo - pad).tolist()), tuple((hi + pad).tolist())
