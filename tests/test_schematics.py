"""The schematic figures draw what their docstrings say, on a white background."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from vae_tut import schematics  # noqa: E402


def _texts(ax):
    ax.figure.canvas.draw()  # renders every label: a formula matplotlib cannot typeset fails here
    return " ".join(t.get_text() for t in ax.texts)


def test_vae_diagram_names_both_loss_terms():
    ax = schematics.vae_diagram()
    text = _texts(ax)
    assert "encoder" in text and "decoder" in text and "KL term" in text and "reconstruction term" in text
    assert ax.figure.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    plt.close("all")


def test_graphical_model_has_two_nodes_and_the_dashed_encoder():
    ax = schematics.graphical_model()
    assert "q_" in _texts(ax)
    assert len([p for p in ax.patches if isinstance(p, matplotlib.patches.Circle)]) == 2
    assert any(p.get_linestyle() == "--" for p in ax.patches if isinstance(p, matplotlib.patches.FancyArrowPatch))
    plt.close("all")


def test_latent_pictures_are_two_panels():
    axes = schematics.latent_pictures()
    _texts(axes[1])
    assert len(axes) == 2 and len(axes[0].collections) == 5 and len(axes[1].patches) > 5
    plt.close("all")


def test_elbo_bar_marks_the_gap():
    ax = schematics.elbo_bar(-30.0, -34.5)
    (bar,) = ax.patches
    assert bar.get_x() == pytest.approx(-34.5) and bar.get_width() == pytest.approx(4.5)
    assert "4.500" in _texts(ax)
    with pytest.raises(ValueError):
        schematics.elbo_bar(-30.0, -20.0)
    plt.close("all")


def test_reparameterisation_graph_moves_the_randomness_and_opens_the_gradient_path():
    direct, reparam = schematics.reparameterisation_graph()
    random_nodes = [[p for p in ax.patches if isinstance(p, matplotlib.patches.Circle) and p.get_linestyle() == "--"]
                    for ax in (direct, reparam)]
    assert len(random_nodes[0]) == len(random_nodes[1]) == 1          # one random node on each side
    assert "varepsilon" in _texts(reparam) and "varepsilon" not in _texts(direct)
    red = [[p for p in ax.patches if isinstance(p, matplotlib.patches.FancyArrowPatch)
            and p.get_edgecolor()[:3] == matplotlib.colors.to_rgb("C3")] for ax in (direct, reparam)]
    assert len(red[0]) == 1 and len(red[1]) == 3  # the gradient reaches phi only when reparameterised
    plt.close("all")
