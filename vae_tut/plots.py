"""The figures the chapters draw again and again: image grids, latent scatters, curves.

Each function draws on a matplotlib ``Axes`` (a new figure when none is given)
and returns it, so chapters can place several side by side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from .errors import ConfigError
from .validation import class_names as check_class_names
from .validation import codes as check_codes
from .validation import finite, one_of, pair, positive, whole
from .validation import images as check_images
from .validation import labels as check_labels

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


def grid_canvas(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """``[N, 1, 28, 28]`` images in [0, 1] laid out ``nrow`` per row on one white canvas ``[H, W]``
    (``torchvision.utils.make_grid``): the pictures of :func:`image_grid` and the web pages' grids."""
    from torchvision.utils import make_grid

    check_images(images)
    whole(nrow, "nrow", 1)
    return make_grid(images.detach().cpu().float(), nrow=nrow, padding=pad, pad_value=1.0)[0]


def image_grid(images: torch.Tensor, nrow: int, ax: Axes | None = None, title: str | None = None, pad: int = 1) -> Axes:
    """Show ``[N, 1, 28, 28]`` images in [0, 1] as one picture, ``nrow`` images per row
    (``torchvision.utils.make_grid``, with thin dark lines between the images)."""
    canvas = grid_canvas(images, nrow, pad)
    ax = _axes(ax)
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def latent_scatter(
    codes: torch.Tensor,
    labels: torch.Tensor,
    ax: Axes | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    dims: tuple[int, int] = (0, 1),
    s: float = 2.0,
    legend: bool = True,
) -> Axes:
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
        ax.scatter(
            codes[sel, dims[0]].numpy(),
            codes[sel, dims[1]].numpy(),
            s=s,
            color=class_colour(k),
            label=name,
            alpha=0.6,
            linewidths=0,
            rasterized=True,
        )
    ax.set_xlabel(f"$z_{dims[0] + 1}$")
    ax.set_ylabel(f"$z_{dims[1] + 1}$")
    if legend:
        ax.legend(markerscale=5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def history_curves(
    history: Sequence[dict[str, float]], axes: Sequence[Axes] | None = None, title: str | None = None
) -> Sequence[Axes]:
    """Per-epoch reconstruction, KL and total loss: training average and 100-image test monitor."""
    keys = ["epoch"] + [f"{s}_{t}" for s in ("train", "test") for t in ("recon", "kl", "total")]
    if not history or any(not isinstance(h, dict) or any(k not in h for k in keys) for h in history):
        raise ConfigError(f"history must be a non-empty list of epochs with {', '.join(keys)} (a run's .history)")
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


# ---------------------------------------------------------------- likelihoods in one unit (chapters 9 and 10)


def _white(ax: Axes) -> None:
    """A white figure and plot area, so the picture reads the same on light and dark pages."""
    ax.figure.patch.set_facecolor("white")
    ax.set_facecolor("white")


def _off_scale_cap(values: Sequence[float]) -> float | None:
    """A top for the y axis that leaves out values far above all others (``None``: show them all).

    The largest value is an outlier when it lies more than three times the spread of the others above
    their maximum; the check is repeated while at least two values remain.
    """
    kept = sorted(values)
    cap = None
    while len(kept) >= 3:
        rest = kept[:-1]
        span = max(rest[-1] - rest[0], 1e-9)
        if kept[-1] <= rest[-1] + 3 * span:
            break
        cap = rest[-1] + 0.5 * span
        kept = rest
    return cap


def neg_elbo_against_c(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    learned: Sequence[tuple[str, float, float]] = (),
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """The full negative ELBO in nats (with the Gaussian constant) against the decoder variance c, log axis.

    ``curves`` holds ``(label, c values, -ELBO values)``, one line with dots each (runs trained
    at fixed c); ``learned`` holds ``(label, learned c, -ELBO)``, a star each, the k-th in the colour
    of the k-th curve. A value far above all others (:func:`_off_scale_cap`) is drawn as a triangle
    at the top edge with its number beside it, so the rest keep a readable scale.
    """
    points = []
    for label, cs, values in curves:
        if len(cs) != len(values) or not cs:
            raise ConfigError(f"curve {label!r} needs one -ELBO per value of c, and at least one")
        points += [(positive(c, "c"), finite(v, "-ELBO")) for c, v in zip(cs, values)]
    points += [(positive(c, "learned c"), finite(v, "-ELBO")) for _, c, v in learned]
    if not points:
        raise ConfigError("nothing to plot: give at least one curve or learned point")
    cap = _off_scale_cap([v for _, v in points])
    ax = _axes(ax, (7.0, 4.4))
    _white(ax)

    def shown(v: float) -> float:
        return v if cap is None else min(v, cap)

    def mark_off_scale(c: float, v: float, colour: str) -> None:
        if cap is not None and v > cap:
            ax.plot([c], [cap], "^", color=colour, ms=9, clip_on=False)
            ax.annotate(
                f"{v:,.0f} (off scale)",
                (c, cap),
                textcoords="offset points",
                xytext=(9, -4),
                fontsize="small",
                color=colour,
                va="top",
            )

    for k, (label, cs, values) in enumerate(curves):
        colour = f"C{k}"
        ax.plot(list(cs), [shown(v) for v in values], "o-", color=colour, label=label)
        for c, v in zip(cs, values):
            mark_off_scale(c, v, colour)
    for k, (label, c, v) in enumerate(learned):
        colour = f"C{k}"
        ax.plot([c], [shown(v)], "*", color=colour, mec="black", mew=0.8, ms=16, label=label, zorder=5)
        mark_off_scale(c, v, colour)
    ax.set_xscale("log")
    if cap is not None:
        low = min(v for _, v in points)
        ax.set_ylim(low - 0.05 * (cap - low), cap)
    ax.set_xlabel("decoder variance c (log scale)")
    ax.set_ylabel("test −ELBO in nats per image\n(with the constant; lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


BAR_KINDS = {"reference": "0.6", "vae": "C0", "published": "C2"}  # the colour of each kind of bar


def bits_per_dim_bars(
    rows: Sequence[tuple[str, float, str]],
    floors: Sequence[float | None] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Horizontal bars of 8-bit bits per dimension, top to bottom in the order of ``rows`` (chapter 10).

    ``rows`` holds ``(label, bits, kind)`` with ``kind`` one of :data:`BAR_KINDS`: a reference
    (the uniform density, independent pixels), one of the book's VAEs, or a published result; the
    number is written beside each bar. ``floors`` (one per row, ``None`` for none) marks the lowest
    cost a model can reach at its decoder variance c with a black tick across its bar.
    """
    if not rows:
        raise ConfigError("bits_per_dim_bars needs at least one row (label, bits, kind)")
    if floors is not None and len(floors) != len(rows):
        raise ConfigError(f"floors must have one entry per row ({len(rows)}), got {len(floors)}")
    labels = [str(label) for label, _, _ in rows]
    bits = [finite(b, "bits per dimension", 0.0) for _, b, _ in rows]
    kinds = [one_of(kind, BAR_KINDS, "kind of bar") for _, _, kind in rows]
    ax = _axes(ax, (8.0, 0.42 * len(rows) + 1.4))
    _white(ax)
    ys = list(range(len(rows)))
    ax.barh(ys, bits, color=[BAR_KINDS[k] for k in kinds], height=0.7)
    right = max(bits) if max(bits) > 0 else 1.0
    for y, b in zip(ys, bits):
        ax.text(b + 0.012 * right, y, f"{b:.2f}", va="center", fontsize="small")
    drew_floor = False
    for y, floor in zip(ys, floors or []):
        if floor is not None:
            ax.plot([finite(floor, "floor"), floor], [y - 0.42, y + 0.42], color="black", lw=2.2)
            drew_floor = True
    ax.set_yticks(ys, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12 * right)
    ax.set_xlabel("8-bit bits per dimension (lower is better)")
    ax.grid(alpha=0.3, axis="x")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    names = {"reference": "reference", "vae": "this book's VAEs", "published": "published (other networks)"}
    handles: list = [Patch(color=BAR_KINDS[k], label=names[k]) for k in BAR_KINDS if k in kinds]
    if drew_floor:
        handles.append(Line2D([], [], color="black", lw=2.2, label="lowest possible at the model's c"))
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return ax
