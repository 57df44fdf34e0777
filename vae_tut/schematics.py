"""Schematic figures of chapters 3 and 4, on white so that they read the same on light and dark pages."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Ellipse, FancyArrowPatch, FancyBboxPatch

from . import plots
from .errors import ConfigError
from .validation import finite
from .validation import seed as check_seed

INK = "0.1"
BLUE, ORANGE = "#dbe9f6", "#fde2c8"  # computed things, random things
GRADIENT = "C3"
Point = tuple[float, float]


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    ax = plots._axes(ax, size, white=True)
    ax.set_axis_off()
    return ax


def _text(
    ax: Axes, xy: Point, text: str, size: float = 11, colour: str = INK, ha: str = "center", va: str = "center"
) -> None:
    ax.text(*xy, text, ha=ha, va=va, fontsize=size, color=colour)


def _box(ax: Axes, xy: Point, text: str, width: float = 1.5, height: float = 0.8, fc: str = BLUE) -> None:
    corner = (xy[0] - width / 2, xy[1] - height / 2)
    ax.add_patch(FancyBboxPatch(corner, width, height, boxstyle="round,pad=0.05", fc=fc, ec=INK, lw=1.2))
    _text(ax, xy, text)


def _arrow(ax: Axes, start: Point, end: Point, dashed: bool = False, colour: str = INK) -> None:
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, shrinkA=2, shrinkB=2, color=colour)
    arrow.set(linewidth=1.3, linestyle="--" if dashed else "-")
    ax.add_patch(arrow)


def _node(ax: Axes, xy: Point, text: str, random: bool = False, fc: str = "", r: float = 0.42, size: int = 12) -> None:
    """A graph node of radius ``r``: dashed and orange for a random one, plain and blue (or ``fc``) for another."""
    ax.add_patch(Circle(xy, r, fc=fc or (ORANGE if random else BLUE), ec=INK, lw=1.3, ls="--" if random else "-"))
    _text(ax, xy, text, size)


def vae_diagram(ax: Axes | None = None) -> Axes:
    """x -> encoder -> (mean, variance) -> z = mean + sd * eps -> decoder -> x_hat, with both loss terms (chapter 3)."""
    ax = _axes(ax, (11, 3.6))
    row = 1.6
    _box(ax, (0.5, row), r"image $\mathbf{x}$", 1.2, fc="white")
    _box(ax, (2.3, row), "encoder\n" + r"$q_\phi(\mathbf{z}\mid\mathbf{x})$")
    _box(ax, (4.3, row), r"$\mu, \sigma^2$", 1.3, fc=ORANGE)
    _box(ax, (6.5, row), r"$\mathbf{z} = \mu + \sigma \odot \varepsilon$", 2.2, fc=ORANGE)
    _box(ax, (8.7, row), "decoder\n" + r"$f_\theta(\mathbf{z})$")
    _box(ax, (10.5, row), r"$\hat{\mathbf{x}}$", 1.0, fc="white")
    for a, b in ((1.1, 1.55), (3.05, 3.65), (4.95, 5.4), (7.6, 7.95), (9.45, 10.0)):
        _arrow(ax, (a, row), (b, row))
    _box(ax, (6.5, 2.95), r"$\varepsilon \sim \mathcal{N}(0, I)$", 1.9, 0.6, fc="white")
    _arrow(ax, (6.5, 2.65), (6.5, 2.0))
    # the KL term acts on the encoder's distribution, the reconstruction term compares x with x_hat
    ax.plot([4.3, 4.3], [0.75, 1.15], color="C3", lw=1.3)
    kl = r"KL term: $D_{\mathrm{KL}}(q_\phi(\mathbf{z}\mid\mathbf{x}) \,\|\, \mathcal{N}(0, I))$"
    _text(ax, (4.3, 0.5), kl, colour="C3")
    ax.plot([0.5, 0.5, 10.5, 10.5], [1.15, -0.3, -0.3, 1.15], color="C0", lw=1.3)
    _text(ax, (5.5, -0.55), r"reconstruction term: $\| \mathbf{x} - \hat{\mathbf{x}} \|^2 / (2c)$", colour="C0")
    ax.set(xlim=(-0.3, 11.3), ylim=(-0.9, 3.4))
    return ax


def graphical_model(ax: Axes | None = None) -> Axes:
    """The generative model p(z) p(x|z) (solid) and the encoder q(z|x) (dashed), for N images (chapter 4)."""
    ax = _axes(ax, (4.2, 4.2))
    _node(ax, (1.0, 2.2), r"$\mathbf{z}$", fc="white", r=0.38, size=15)
    _node(ax, (1.0, 0.6), r"$\mathbf{x}$", fc="0.8", r=0.38, size=15)
    _arrow(ax, (0.92, 1.8), (0.92, 1.0))
    _text(ax, (0.45, 1.4), r"$p_\theta(\mathbf{x}\mid\mathbf{z})$", ha="right")
    _arrow(ax, (1.1, 1.0), (1.1, 1.8), dashed=True, colour="C1")
    _text(ax, (1.55, 1.4), r"$q_\phi(\mathbf{z}\mid\mathbf{x})$", colour="C1", ha="left")
    _text(ax, (1.0, 2.85), r"$p(\mathbf{z}) = \mathcal{N}(0, I)$", va="bottom")
    ax.add_patch(FancyBboxPatch((-0.35, 0.05), 2.9, 2.65, boxstyle="round,pad=0.02", fc="none", ec="0.5", lw=1.0))
    _text(ax, (2.45, 0.15), "N images", 9, "0.35", ha="right", va="bottom")
    ax.set(xlim=(-0.6, 2.7), ylim=(-0.1, 3.3), aspect="equal")
    return ax


def latent_pictures(axes: Sequence[Axes] | None = None, seed: int = 0) -> Sequence[Axes]:
    """A sketch of an autoencoder's latent space (a point per image) beside a VAE's (one Gaussian each) (chapter 3)."""
    axes = plt.subplots(1, 2, figsize=(9, 4.2))[1] if axes is None else axes
    rng = np.random.default_rng(check_seed(seed))
    centres = np.array([[-2.6, 1.9], [2.4, 2.2], [0.3, -2.7], [3.0, -1.2], [-2.2, -1.6]]) * 1.4
    for i, c in enumerate(centres):
        pts = c + rng.normal(scale=0.35, size=(25, 2))
        axes[0].scatter(pts[:, 0], pts[:, 1], s=8, color=f"C{i}")
    axes[0].set_title("autoencoder: a point per image,\nclusters anywhere, empty gaps between them")
    for i, c in enumerate(centres * 0.32):
        for _ in range(6):
            mean = c + rng.normal(scale=0.25, size=2)
            w, h = rng.uniform(0.5, 0.9, size=2)
            axes[1].add_patch(Ellipse(mean, w, h, fc=f"C{i}", ec=f"C{i}", alpha=0.25))
    axes[1].add_patch(Circle((0, 0), 2.0, fill=False, ls="--", ec=INK, lw=1.2))
    axes[1].text(1.45, 1.65, r"$\mathcal{N}(0, I)$, radius 2", fontsize=9, color=INK)
    axes[1].set_title("VAE: a Gaussian per image,\noverlapping, pulled towards the prior")
    for ax in axes:
        plots._axes(ax, white=True).set(xlim=(-5.5, 5.5), ylim=(-5.5, 5.5), aspect="equal", xticks=[], yticks=[])
    return axes


def elbo_bar(log_px: float, elbo: float, ax: Axes | None = None) -> Axes:
    """log p(x) = ELBO + KL(q(z|x) || p(z|x)) on a line of nats, the gap as a bar (chapter 4)."""
    if finite(elbo, "ELBO") > finite(log_px, "log p(x)"):
        raise ConfigError("the ELBO cannot exceed log p(x)")
    ax = plots._axes(ax, (7, 2.0), white=True)
    gap = log_px - elbo
    margin = max(gap, 1e-9) * 1.2
    ax.barh([0], [gap], left=elbo, height=0.35, color="C3", alpha=0.85)
    for value, label, colour in ((elbo, "ELBO", "C0"), (log_px, r"$\log p(\mathbf{x})$", INK)):
        ax.axvline(value, color=colour, lw=2)
        _text(ax, (value, 0.42), label, colour=colour, va="bottom")
    kl = r"gap $= D_{\mathrm{KL}}(q(\mathbf{z}\mid\mathbf{x}) \,\|\, p(\mathbf{z}\mid\mathbf{x}))$"
    _text(ax, (elbo + gap / 2, -0.42), f"{kl} $= {gap:.3f}$ nats", 10, "C3", va="top")
    ax.set(xlim=(elbo - margin, log_px + margin), ylim=(-1.0, 0.9), yticks=[], xlabel="nats per data point")
    ax.spines[["top", "right", "left"]].set_visible(False)
    return ax


def reparameterisation_graph(axes: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """The loss's computational graph with z sampled directly (left) and reparameterised (right) (chapter 4)."""
    axes = plt.subplots(1, 2, figsize=(11, 3.3))[1] if axes is None else axes
    phi, musd, z, loss = (0.6, 1.5), (2.2, 1.5), (3.9, 1.5), (5.6, 1.5)
    for ax, reparam in zip(axes, (False, True)):
        _axes(ax, (5.5, 4.2))
        for xy, text in ((phi, r"$\phi$"), (musd, r"$\mu, \sigma$"), (loss, r"$\mathcal{L}$")):
            _node(ax, xy, text)
        _node(ax, z, r"$\mathbf{z}$", random=not reparam)
        for a, b in ((phi, musd), (musd, z), (z, loss)):
            _arrow(ax, (a[0] + 0.45, a[1] + 0.08), (b[0] - 0.45, b[1] + 0.08))
        for a, b in ((loss, z), (z, musd), (musd, phi)) if reparam else ((loss, z),):
            _arrow(ax, (a[0] - 0.45, a[1] - 0.2), (b[0] + 0.45, b[1] - 0.2), colour=GRADIENT)
        if reparam:
            _node(ax, (3.9, 3.1), r"$\varepsilon$", random=True)
            _arrow(ax, (3.9, 2.65), (3.9, 1.95))
            _text(ax, (4.45, 3.1), r"$\varepsilon \sim \mathcal{N}(0, I)$: the only random node", 10, ha="left")
            note = r"$\nabla_\phi \mathcal{L}$ flows back through $\mathbf{z} = \mu + \sigma \odot \varepsilon$"
            ax.set_title("reparameterised: randomness enters from the side", fontsize=11)
        else:
            _text(ax, ((musd[0] + z[0]) / 2, z[1] - 0.2), "x", 16, GRADIENT)
            note = r"$\mathbf{z} \sim q_\phi(\mathbf{z}\mid\mathbf{x})$ is drawn, not computed:"
            note += "\nthe gradient stops at the random node"
            ax.set_title("sampled directly: no path from the loss to $\\phi$", fontsize=11)
        _text(ax, (3.1, 0.55), note, 10, GRADIENT)
        ax.set(xlim=(0, 7.6), ylim=(0.1, 3.7), aspect="equal")
    return axes
