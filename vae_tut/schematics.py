"""Schematic figures drawn at build time: the VAE's data flow, its graphical model, the two kinds of
latent space, the ELBO as a bar and the reparameterisation trick as a computational graph
(chapters 3 and 4).

Each function draws on a matplotlib ``Axes`` (a new figure when none is given) with a white
background, so the figures read the same on the book's light and dark pages.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Ellipse, FancyArrowPatch, FancyBboxPatch

from .errors import ConfigError
from .validation import finite
from .validation import seed as check_seed

INK = "0.1"


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        fig.patch.set_facecolor("white")
    ax.set_facecolor("white")
    ax.set_axis_off()
    return ax


def _box(
    ax: Axes, xy: tuple[float, float], text: str, width: float = 1.5, height: float = 0.8, colour: str = "#dbe9f6"
) -> None:
    x, y = xy
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05", fc=colour, ec=INK, lw=1.2
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=11, color=INK)


def _arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    style: str = "-|>",
    dashed: bool = False,
    colour: str = INK,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=14,
            lw=1.3,
            color=colour,
            linestyle="--" if dashed else "-",
            shrinkA=2,
            shrinkB=2,
        )
    )


def vae_diagram(ax: Axes | None = None) -> Axes:
    """x -> encoder -> (mean, variance) -> z = mean + sd * eps -> decoder -> x_hat, with the two
    loss terms drawn where they act."""
    ax = _axes(ax, (11, 3.6))
    row = 1.6
    _box(ax, (0.5, row), r"image $\mathbf{x}$", 1.2, colour="white")
    _box(ax, (2.3, row), "encoder\n" + r"$q_\phi(\mathbf{z}\mid\mathbf{x})$")
    _box(ax, (4.3, row), r"$\mu, \sigma^2$", 1.3, colour="#fde2c8")
    _box(ax, (6.5, row), r"$\mathbf{z} = \mu + \sigma \odot \varepsilon$", 2.2, colour="#fde2c8")
    _box(ax, (8.7, row), "decoder\n" + r"$f_\theta(\mathbf{z})$")
    _box(ax, (10.5, row), r"$\hat{\mathbf{x}}$", 1.0, colour="white")
    for a, b in ((1.1, 1.55), (3.05, 3.65), (4.95, 5.4), (7.6, 7.95), (9.45, 10.0)):
        _arrow(ax, (a, row), (b, row))
    _box(ax, (6.5, 2.95), r"$\varepsilon \sim \mathcal{N}(0, I)$", 1.9, 0.6, colour="white")
    _arrow(ax, (6.5, 2.65), (6.5, 2.0))
    # the KL term acts on the encoder's distribution, the reconstruction term compares x with x_hat
    ax.annotate("", xy=(4.3, 1.15), xytext=(4.3, 0.75), arrowprops=dict(arrowstyle="-", color="C3", lw=1.3))
    ax.text(
        4.3,
        0.5,
        r"KL term: $D_{\mathrm{KL}}(q_\phi(\mathbf{z}\mid\mathbf{x}) \,\|\, \mathcal{N}(0, I))$",
        ha="center",
        va="center",
        fontsize=11,
        color="C3",
    )
    ax.plot([0.5, 0.5, 10.5, 10.5], [1.15, -0.3, -0.3, 1.15], color="C0", lw=1.3)
    ax.text(
        5.5,
        -0.55,
        r"reconstruction term: $\| \mathbf{x} - \hat{\mathbf{x}} \|^2 / (2c)$",
        ha="center",
        va="center",
        fontsize=11,
        color="C0",
    )
    ax.set_xlim(-0.3, 11.3)
    ax.set_ylim(-0.9, 3.4)
    return ax


def graphical_model(ax: Axes | None = None) -> Axes:
    """The generative model p(z) p(x|z) (solid) and the encoder q(z|x) (dashed), for N images."""
    ax = _axes(ax, (4.2, 4.2))
    z, x = (1.0, 2.2), (1.0, 0.6)
    ax.add_patch(Circle(z, 0.38, fc="white", ec=INK, lw=1.4))
    ax.add_patch(Circle(x, 0.38, fc="0.8", ec=INK, lw=1.4))
    ax.text(*z, r"$\mathbf{z}$", ha="center", va="center", fontsize=15, color=INK)
    ax.text(*x, r"$\mathbf{x}$", ha="center", va="center", fontsize=15, color=INK)
    _arrow(ax, (0.92, 1.8), (0.92, 1.0))
    ax.text(0.45, 1.4, r"$p_\theta(\mathbf{x}\mid\mathbf{z})$", ha="right", va="center", fontsize=11)
    _arrow(ax, (1.1, 1.0), (1.1, 1.8), dashed=True, colour="C1")
    ax.text(1.55, 1.4, r"$q_\phi(\mathbf{z}\mid\mathbf{x})$", ha="left", va="center", fontsize=11, color="C1")
    ax.text(1.0, 2.85, r"$p(\mathbf{z}) = \mathcal{N}(0, I)$", ha="center", va="bottom", fontsize=11)
    ax.add_patch(FancyBboxPatch((-0.35, 0.05), 2.9, 2.65, boxstyle="round,pad=0.02", fc="none", ec="0.5", lw=1.0))
    ax.text(2.45, 0.15, "N images", ha="right", va="bottom", fontsize=9, color="0.35")
    ax.set_xlim(-0.6, 2.7)
    ax.set_ylim(-0.1, 3.3)
    ax.set_aspect("equal")
    return ax


def latent_pictures(axes: Sequence[Axes] | None = None, seed: int = 0) -> Sequence[Axes]:
    """An autoencoder's latent space (one point per image, islands and gaps) beside a VAE's
    (one Gaussian per image, overlapping and held near N(0, I)). A sketch, not trained codes."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
        fig.patch.set_facecolor("white")
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
        ax.set_facecolor("white")
        ax.set_xlim(-5.5, 5.5)
        ax.set_ylim(-5.5, 5.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def elbo_bar(log_px: float, elbo: float, ax: Axes | None = None) -> Axes:
    """log p(x) = ELBO + KL(q(z|x) || p(z|x)) on a line of nats: the gap as a bar from the ELBO up to
    log p(x) (chapter 4)."""
    if finite(elbo, "ELBO") > finite(log_px, "log p(x)"):
        raise ConfigError("the ELBO cannot exceed log p(x)")
    ax = _axes(ax, (7, 2.0))
    ax.set_axis_on()
    gap = log_px - elbo
    margin = max(gap, 1e-9) * 1.2
    ax.barh([0], [gap], left=elbo, height=0.35, color="C3", alpha=0.85)
    for value, label, colour in ((elbo, "ELBO", "C0"), (log_px, r"$\log p(\mathbf{x})$", INK)):
        ax.axvline(value, color=colour, lw=2)
        ax.text(value, 0.42, label, ha="center", va="bottom", fontsize=11, color=colour)
    ax.text(
        elbo + gap / 2,
        -0.42,
        r"gap $= D_{\mathrm{KL}}(q(\mathbf{z}\mid\mathbf{x}) \,\|\, p(\mathbf{z}\mid\mathbf{x}))$"
        f" $= {gap:.3f}$ nats",
        ha="center",
        va="top",
        fontsize=10,
        color="C3",
    )
    ax.set_xlim(elbo - margin, log_px + margin)
    ax.set_ylim(-1.0, 0.9)
    ax.set_yticks([])
    ax.set_xlabel("nats per data point")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax


def _node(ax: Axes, xy: tuple[float, float], text: str, random: bool = False) -> None:
    """A graph node: a circle, dashed and orange for a random one, plain for a computed one."""
    ax.add_patch(Circle(xy, 0.42, fc="#fde2c8" if random else "#dbe9f6", ec=INK, lw=1.3, ls="--" if random else "-"))
    ax.text(*xy, text, ha="center", va="center", fontsize=12, color=INK)


def reparameterisation_graph(axes: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """The loss's computational graph with z sampled directly (left: the random node sits between
    the encoder's outputs and the loss, so no gradient reaches phi) and reparameterised (right:
    the noise eps enters from the side and the gradient flows back through z to phi). Forward
    edges are black; the gradient's path is red and points backwards (chapter 4)."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.3))
        fig.patch.set_facecolor("white")
    grad = "C3"
    for ax, reparam in zip(axes, (False, True)):
        _axes(ax, (5.5, 4.2))
        phi, musd, z, loss = (0.6, 1.5), (2.2, 1.5), (3.9, 1.5), (5.6, 1.5)
        _node(ax, phi, r"$\phi$")
        _node(ax, musd, r"$\mu, \sigma$")
        _node(ax, z, r"$\mathbf{z}$", random=not reparam)
        _node(ax, loss, r"$\mathcal{L}$")
        for a, b in ((phi, musd), (musd, z), (z, loss)):
            _arrow(ax, (a[0] + 0.45, a[1] + 0.08), (b[0] - 0.45, b[1] + 0.08))
        if reparam:
            eps = (3.9, 3.1)
            _node(ax, eps, r"$\varepsilon$", random=True)
            _arrow(ax, (eps[0], eps[1] - 0.45), (z[0], z[1] + 0.45))
            ax.text(
                eps[0] + 0.55,
                eps[1],
                r"$\varepsilon \sim \mathcal{N}(0, I)$: the only random node",
                ha="left",
                va="center",
                fontsize=10,
                color=INK,
            )
            for a, b in ((loss, z), (z, musd), (musd, phi)):
                _arrow(ax, (a[0] - 0.45, a[1] - 0.2), (b[0] + 0.45, b[1] - 0.2), colour=grad)
            ax.text(
                3.1,
                0.55,
                r"$\nabla_\phi \mathcal{L}$ flows back through "
                r"$\mathbf{z} = \mu + \sigma \odot \varepsilon$",
                ha="center",
                va="center",
                fontsize=10,
                color=grad,
            )
            ax.set_title("reparameterised: randomness enters from the side", fontsize=11)
        else:
            _arrow(ax, (loss[0] - 0.45, loss[1] - 0.2), (z[0] + 0.45, z[1] - 0.2), colour=grad)
            ax.text((musd[0] + z[0]) / 2, z[1] - 0.2, "x", ha="center", va="center", fontsize=16, color=grad)
            ax.text(
                3.1,
                0.55,
                r"$\mathbf{z} \sim q_\phi(\mathbf{z}\mid\mathbf{x})$ is drawn, not computed:"
                "\nthe gradient stops at the random node",
                ha="center",
                va="center",
                fontsize=10,
                color=grad,
            )
            ax.set_title("sampled directly: no path from the loss to $\\phi$", fontsize=11)
        ax.set_xlim(0, 7.6)
        ax.set_ylim(0.1, 3.7)
        ax.set_aspect("equal")
    return axes
