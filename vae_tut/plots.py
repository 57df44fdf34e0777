"""The figures the chapters draw again and again: image grids, latent scatters, curves.

Each function draws on a matplotlib ``Axes`` (a new figure when none is given)
and returns it, so chapters can place several side by side.
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from .data import check_images
from .errors import ConfigError
from .validation import class_names as check_class_names
from .validation import codes as check_codes
from .validation import labels as check_labels
from .validation import pair, whole

CLASS_COLOURS = "tab10"  # one colour per class, in every scatter and in the in-browser explorers


def class_colour(k: int) -> str:
    """The hex colour of class ``k`` (chapters 2-9 and the in-browser explorers)."""
    whole(k, "class", 0)
    return to_hex(plt.get_cmap(CLASS_COLOURS)(k % 10))


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """``fig`` as PNG bytes on a white background; the figure is closed (not shown again below the cell)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def _axes(ax: Axes | None, size: tuple[float, float] = (5, 5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def image_grid(images: torch.Tensor, nrow: int, ax: Axes | None = None,
               title: str | None = None, pad: int = 1) -> Axes:
    """Show ``[N, 1, 28, 28]`` images in [0, 1] as one picture, ``nrow`` images per row
    (``torchvision.utils.make_grid``, with thin dark lines between the images)."""
    from torchvision.utils import make_grid

    check_images(images)
    whole(nrow, "nrow", 1)
    ax = _axes(ax)
    canvas = make_grid(images.detach().cpu().float(), nrow=nrow, padding=pad, pad_value=1.0)[0]
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def latent_scatter(codes: torch.Tensor, labels: torch.Tensor, ax: Axes | None = None,
                   class_names: Sequence[str] | None = None, title: str | None = None,
                   dims: tuple[int, int] = (0, 1), s: float = 2.0, legend: bool = True) -> Axes:
    """Scatter two latent dimensions of ``codes`` (float32 ``[N, z]``), one colour per class of
    ``labels`` (integers >= 0, one per code)."""
    codes = check_codes(codes, "codes").detach().cpu()
    labels = check_labels(labels, len(codes)).cpu()
    dims = pair(dims, codes.shape[1], "dims")
    n_classes = int(labels.max()) + 1
    if class_names is not None:
        class_names = check_class_names(class_names, n_classes)
    ax = _axes(ax, (6, 5))
    for k in range(n_classes):
        sel = labels == k
        name = class_names[k] if class_names is not None else str(k)
        ax.scatter(codes[sel, dims[0]].numpy(), codes[sel, dims[1]].numpy(), s=s, color=class_colour(k), label=name,
                   alpha=0.6, linewidths=0, rasterized=True)
    ax.set_xlabel(f"$z_{dims[0] + 1}$")
    ax.set_ylabel(f"$z_{dims[1] + 1}$")
    if legend:
        ax.legend(markerscale=5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False)
    if title:
        ax.set_title(title)
    return ax


def history_curves(history: Sequence[dict[str, float]], axes: Sequence[Axes] | None = None,
                   title: str | None = None) -> Sequence[Axes]:
    """Per-epoch reconstruction, KL and total loss: training average and 100-image test monitor."""
    keys = ["epoch"] + [f"{s}_{t}" for s in ("train", "test") for t in ("recon", "kl", "total")]
    if not history or any(not isinstance(h, dict) or any(k not in h for k in keys) for h in history):
        raise ConfigError(f"history must be a non-empty list of epochs with {', '.join(keys)} "
                          "(a run's .history)")
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    epochs = [h["epoch"] for h in history]
    for ax, term, name in zip(axes, ("recon", "kl", "total"), ("reconstruction", "KL", "total")):
        ax.plot(epochs, [h[f"train_{term}"] for h in history], "o-", ms=3, label="train (epoch mean)")
        ax.plot(epochs, [h[f"test_{term}"] for h in history], "s--", ms=3, label="test (100 images)")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        axes[0].figure.suptitle(title, y=1.02)
    return axes
