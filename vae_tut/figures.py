"""What a trained two-dimensional VAE can do, in pictures (chapters 5 and 6): four views and two figures of them."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from . import validation
from .analysis import prior_samples
from .errors import ConfigError
from .latent import decode, encode, extent, interpolate, normal_quantile_codes
from .plots import _axes, image_grid, latent_scatter
from .validation import IMAGE_SHAPE

PAD = 1  # pixels between the images of a grid (the default of :func:`vae_tut.plots.image_grid`)


def _check_2d(model: nn.Module, what: str) -> None:
    if (dim := getattr(model, "latent_dim", None)) != 2:
        raise ConfigError(f"{what} needs a model with a 2-D latent space, got latent_dim={dim!r}")


def prior_sample_grid(
    model: nn.Module,
    n_side: int = 10,
    seed: int = 0,
    ax: Axes | None = None,
    title: str | None = "samples, z ~ N(0, I)",
) -> Axes:
    """``n_side * n_side`` images decoded from codes drawn from N(0, I) with a seeded generator."""
    validation.whole(n_side, "n_side", 1)
    codes = prior_samples(n_side * n_side, model.latent_dim, seed)  # type: ignore[arg-type]
    return image_grid(decode(model, codes), nrow=n_side, ax=ax, title=title)


def manifold(
    model: nn.Module,
    n_side: int = 20,
    tail: float = 0.05,
    ax: Axes | None = None,
    title: str | None = "latent manifold (normal quantiles)",
) -> Axes:
    """Images decoded on an ``n_side x n_side`` grid of N(0, 1) quantiles ``tail .. 1 - tail``, end codes as ticks."""
    _check_2d(model, "manifold")
    validation.whole(n_side, "n_side", 2)
    codes = normal_quantile_codes(n_side, tail)
    ax = image_grid(decode(model, codes), nrow=n_side, ax=_axes(ax, (6, 6)), title=title)
    ends = [PAD + 13.5, PAD + (n_side - 1) * (28 + PAD) + 13.5]
    lo, hi = f"{codes[0, 0].item():.2f}", f"{codes[-1, 0].item():.2f}"  # top left: the smallest x, largest z_2
    ax.set(xticks=ends, xticklabels=[lo, hi], yticks=ends, yticklabels=[hi, lo], xlabel="$z_1$", ylabel="$z_2$")
    return ax


def latent_map(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = "posterior means of the test set",
    tail: float | None = 0.05,
    path: torch.Tensor | None = None,
) -> Axes:
    """Posterior means of ``images`` by class, :func:`manifold`'s square at ``tail`` (if any), ``path`` as a line."""
    _check_2d(model, "latent_map")
    if path is not None:
        validation.codes(path, "path", 2)
    means, _ = encode(model, images)
    ax = latent_scatter(means, labels, ax=_axes(ax, (7, 5.5)), class_names=class_names, title=title)
    if tail is not None:
        (x0, y0), (x1, y1) = extent(normal_quantile_codes(2, tail), margin=0.0)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=1.2, color="black"))
    if path is not None:
        ax.plot(path[:, 0].numpy(), path[:, 1].numpy(), "k.-", lw=1.5, ms=6)
        ax.plot(path[[0, -1], 0].numpy(), path[[0, -1], 1].numpy(), "ko", ms=9, mfc="none", mew=2)
    return ax


def interpolation_codes(model: nn.Module, start: torch.Tensor, end: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """``steps`` codes on the line between the posterior means of two images ``[1, 28, 28]``."""
    for image, name in ((start, "start"), (end, "end")):
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != IMAGE_SHAPE:
            shape = list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ConfigError(f"{name} must be one image [1, 28, 28] (e.g. images[i]), got {shape}")
    means, _ = encode(model, torch.stack([start, end]))
    return interpolate(means[0], means[1], steps)


def generation_figure(model: nn.Module, title: str, seed: int = 0, n_side: int = 10, n_manifold: int = 20) -> Figure:
    """Two panels: prior samples (:func:`prior_sample_grid`) beside the manifold (:func:`manifold`)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
    prior_sample_grid(model, n_side, seed, axes[0], title=f"{n_side * n_side} samples, z ~ N(0, I) (seed {seed})")
    manifold(model, n_side=n_manifold, ax=axes[1], title=f"manifold: {n_manifold} x {n_manifold} normal quantiles")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latent_figure(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    pair: tuple[int, int],
    title: str,
    class_names: Sequence[str] | None = None,
    steps: int = 10,
) -> Figure:
    """Two panels: :func:`latent_map` with the path between the images ``pair`` indexes, and the images along it."""
    validation.images(images)
    labels = validation.labels(labels, len(images))
    i, j = validation.pair(pair, len(images))
    digits = [str(k) for k in range(int(labels.max()) + 1)]
    names = validation.class_names(digits if class_names is None else class_names, len(digits))
    codes = interpolation_codes(model, images[i], images[j], steps)
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 9.2), gridspec_kw={"height_ratios": [5.2, 1.2]})
    square = "posterior means of the test images (dashed: the manifold's square)"
    latent_map(model, images, labels, class_names=names, ax=axes[0], path=codes, title=square)
    path = f"interpolation: {names[int(labels[i])]} -> {names[int(labels[j])]}"
    image_grid(decode(model, codes), nrow=steps, ax=axes[1], title=path)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
