"""The figures the chapters draw again and again, each on a given matplotlib ``Axes`` (else a new figure)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import validation
from .errors import ConfigError
from .validation import finite, positive


def class_colour(k: int) -> str:
    """The hex colour (``tab10``) of class ``k`` in every scatter (chapters 2-9) and in-browser explorer."""
    return to_hex(plt.get_cmap("tab10")(validation.whole(k, "class", 0) % 10))


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """``fig`` as PNG bytes on a white background; the figure is closed (not shown again below the cell)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def _axes(ax: Axes | None, size: tuple[float, float] = (5, 5), white: bool = False) -> Axes:
    ax = plt.subplots(figsize=size)[1] if ax is None else ax
    if white:
        ax.figure.patch.set_facecolor("white")
        ax.set_facecolor("white")
    return ax


def grid_canvas(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """``[N, 1, 28, 28]`` images in [0, 1], ``nrow`` per row, on one white canvas ``[H, W]`` (``make_grid``)."""
    from torchvision.utils import make_grid

    validation.images(images)
    validation.whole(nrow, "nrow", 1)
    return make_grid(images.detach().cpu().float(), nrow=nrow, padding=pad, pad_value=1.0)[0]


def image_grid(images: torch.Tensor, nrow: int, ax: Axes | None = None, title: str | None = None, pad: int = 1) -> Axes:
    """Show ``[N, 1, 28, 28]`` images in [0, 1] as one picture, ``nrow`` per row, with thin lines between them."""
    canvas = grid_canvas(images, nrow, pad)
    ax = _axes(ax)
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xticks=[], yticks=[])
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
    """Scatter two latent dimensions ``dims`` of ``codes`` ``[N, z]``, one colour per class of ``labels``."""
    codes = validation.codes(codes, "codes").detach().cpu()
    labels = validation.labels(labels, len(codes)).cpu()
    dims = validation.pair(dims, codes.shape[1], "dims")
    digits = [str(k) for k in range(int(labels.max()) + 1)]
    names = validation.class_names(digits if class_names is None else class_names, len(digits))
    ax = _axes(ax, (6, 5))
    for k in range(len(digits)):
        x, y = codes[labels == k][:, list(dims)].T.numpy()
        ax.scatter(x, y, s=s, color=class_colour(k), label=names[k], alpha=0.6, linewidths=0, rasterized=True)
    ax.set(xlabel=f"$z_{dims[0] + 1}$", ylabel=f"$z_{dims[1] + 1}$")
    if legend:
        ax.legend(markerscale=5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def _code_and_image(
    codes: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None,
    dims: tuple[int, int],
    image: torch.Tensor,
    titles: tuple[str, str],
) -> tuple[Figure, Axes]:
    """The explorers' picture: ``codes`` by class (one dimension spread by a jitter) beside a decoded ``image``."""
    fig, (ax_s, ax_i) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    if codes.shape[1] == 1:
        jitter = torch.rand(len(codes), generator=torch.Generator().manual_seed(0))
        latent_scatter(torch.stack([codes[:, 0], jitter], 1), labels, ax=ax_s, class_names=class_names)
        ax_s.set_ylabel("(random jitter)")
    else:
        latent_scatter(codes, labels, ax=ax_s, class_names=class_names, dims=dims)
    ax_i.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax_i.set(xticks=[], yticks=[])
    ax_s.set_title(titles[0])
    ax_i.set_title(titles[1], fontsize="small")
    fig.tight_layout()
    return fig, ax_s


def history_curves(
    history: Sequence[dict[str, float]], axes: Sequence[Axes] | None = None, title: str | None = None
) -> Sequence[Axes]:
    """Per-epoch reconstruction, KL and total loss: training average and 100-image test monitor."""
    keys = ["epoch"] + [f"{s}_{t}" for s in ("train", "test") for t in ("recon", "kl", "total")]
    if not history or any(not isinstance(h, dict) or any(k not in h for k in keys) for h in history):
        raise ConfigError(f"history must be a non-empty list of epochs with {', '.join(keys)} (a run's .history)")
    axes = plt.subplots(1, 3, figsize=(13, 3.4))[1] if axes is None else axes
    epochs = [h["epoch"] for h in history]
    for ax, term, name in zip(axes, ("recon", "kl", "total"), ("reconstruction", "KL", "total")):
        ax.plot(epochs, [h[f"train_{term}"] for h in history], "o-", ms=3, label="train (epoch mean)")
        ax.plot(epochs, [h[f"test_{term}"] for h in history], "s--", ms=3, label="test (100 images)")
        ax.set(xlabel="epoch", title=name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        axes[0].figure.suptitle(title, y=1.02)
    return axes


def _off_scale_cap(values: Sequence[float]) -> float:
    """A top for the y axis leaving out values more than three spreads of the rest above them (else infinity)."""
    kept = sorted(values)
    cap = math.inf
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
    """The full negative ELBO in nats against the decoder variance c: ``curves`` ``(label, cs, -ELBOs)`` at fixed c,
    ``learned`` ``(label, c, -ELBO)`` stars, outliers as triangles at the top edge (chapters 9 and 10)."""
    marks = []  # (c, -ELBO, colour) of every point
    for k, (label, cs, values) in enumerate(curves):
        if len(cs) != len(values) or not cs:
            raise ConfigError(f"curve {label!r} needs one -ELBO per value of c, and at least one")
        marks += [(positive(c, "c"), finite(v, "-ELBO"), f"C{k}") for c, v in zip(cs, values)]
    marks += [(positive(c, "learned c"), finite(v, "-ELBO"), f"C{k}") for k, (_, c, v) in enumerate(learned)]
    if not marks:
        raise ConfigError("nothing to plot: give at least one curve or learned point")
    top = _off_scale_cap([v for _, v, _ in marks])
    ax = _axes(ax, (7.0, 4.4), white=True)
    for k, (label, cs, values) in enumerate(curves):
        ax.plot(list(cs), [min(v, top) for v in values], "o-", color=f"C{k}", label=label)
    for k, (label, c, v) in enumerate(learned):
        ax.plot([c], [min(v, top)], "*", color=f"C{k}", mec="black", mew=0.8, ms=16, label=label, zorder=5)
    for c, v, colour in marks:
        if v > top:
            ax.plot([c], [top], "^", color=colour, ms=9, clip_on=False)
            ax.text(c, top, f"   {v:,.0f} (off scale)", fontsize="small", color=colour, va="top")
    ax.set(xscale="log", xlabel="decoder variance c (log scale)")
    ax.set_ylabel("test −ELBO in nats per image\n(with the constant; lower is better)")
    if top < math.inf:
        low = min(v for _, v, _ in marks)
        ax.set_ylim(low - 0.05 * (top - low), top)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


# the colour and legend entry of each kind of bar
BAR_KINDS = {"reference": ("0.6", "reference"), "vae": ("C0", "this book's VAEs"), "published": ("C2", "published")}


def bits_per_dim_bars(
    rows: Sequence[tuple[str, float, str]],
    floors: Sequence[float | None] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Bars of 8-bit bits per dimension, ``rows`` ``(label, bits, kind)`` from the top, ``kind`` in :data:`BAR_KINDS`;
    ``floors`` (per row, or ``None``) ticks the lowest cost reachable at the model's decoder variance c (chapter 10)."""
    if not rows:
        raise ConfigError("bits_per_dim_bars needs at least one row (label, bits, kind)")
    if floors is not None and len(floors) != len(rows):
        raise ConfigError(f"floors must have one entry per row ({len(rows)}), got {len(floors)}")
    bits = [finite(b, "bits per dimension", 0.0) for _, b, _ in rows]
    kinds = [validation.one_of(kind, BAR_KINDS, "kind of bar") for _, _, kind in rows]
    ticks = [(y, finite(floor, "floor")) for y, floor in enumerate(floors or []) if floor is not None]
    ax = _axes(ax, (8.0, 0.42 * len(rows) + 1.4), white=True)
    ys = list(range(len(rows)))
    ax.barh(ys, bits, color=[BAR_KINDS[k][0] for k in kinds], height=0.7)
    right = max(bits) if max(bits) > 0 else 1.0
    for y, b in zip(ys, bits):
        ax.text(b + 0.012 * right, y, f"{b:.2f}", va="center", fontsize="small")
    for y, floor in ticks:
        ax.plot([floor, floor], [y - 0.42, y + 0.42], color="black", lw=2.2)
    ax.set_yticks(ys, [str(label) for label, _, _ in rows], fontsize="small")
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.12 * right), xlabel="8-bit bits per dimension (lower is better)")
    ax.grid(alpha=0.3, axis="x")
    handles: list = [Patch(color=BAR_KINDS[k][0], label=BAR_KINDS[k][1]) for k in BAR_KINDS if k in kinds]
    if ticks:
        handles.append(Line2D([], [], color="black", lw=2.2, label="lowest possible at the model's c"))
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return ax
