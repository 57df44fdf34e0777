import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vae_tut.errors import ConfigError
from vae_tut.figures import (
    generation_figure,
    interpolation_codes,
    latent_figure,
    latent_map,
    manifold,
    prior_sample_grid,
)
from vae_tut.models import build_model


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_panels_return_one_axes_each(arch, data):
    images, labels = data
    model = build_model(arch, 2)
    panels = [prior_sample_grid(model, n_side=3), manifold(model, n_side=4),
              latent_map(model, images, labels, class_names=[f"c{k}" for k in range(10)],
                         path=torch.zeros(5, 2))]
    assert all(isinstance(ax, Axes) for ax in panels)
    assert len({id(ax.figure) for ax in panels}) == 3  # each drew its own figure


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_figures_have_two_panels_and_the_title(arch, data):
    images, labels = data
    model = build_model(arch, 2)
    fig = generation_figure(model, "a title", n_side=3, n_manifold=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.get_suptitle() == "a title"
    fig = latent_figure(model, images, labels, (0, 1), "another", steps=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.get_suptitle() == "another" and fig.axes[1].get_title().endswith("0 -> 1")


def test_panels_draw_on_given_axes(data):
    images, labels = data
    model = build_model("mlp", 2)
    fig, axes = plt.subplots(1, 2)
    assert prior_sample_grid(model, n_side=2, ax=axes[0]) is axes[0]
    assert manifold(model, n_side=2, ax=axes[1]) is axes[1]
    assert len(fig.axes) == 2


def test_interpolation_codes_join_the_two_means(data):
    images, _ = data
    model = build_model("mlp", 2).eval()
    codes = interpolation_codes(model, images[0], images[1], steps=6)
    with torch.no_grad():
        means, _ = model.encode(images[:2])
    assert codes.shape == (6, 2)
    assert torch.allclose(codes[0], means[0], atol=1e-6) and torch.allclose(codes[-1], means[1], atol=1e-6)


def test_prior_sample_grid_is_seeded():
    model = build_model("mlp", 2).eval()
    a = prior_sample_grid(model, n_side=2, seed=3).images[0].get_array()
    b = prior_sample_grid(model, n_side=2, seed=3).images[0].get_array()
    c = prior_sample_grid(model, n_side=2, seed=4).images[0].get_array()
    assert (a == b).all() and not (a == c).all()


def test_two_dimensional_views_refuse_other_latent_sizes(data):
    images, labels = data
    model = build_model("mlp", 3)
    prior_sample_grid(model, n_side=2)  # sampling works for any z
    with pytest.raises(ConfigError, match="2-D latent space"):
        manifold(model)
    with pytest.raises(ConfigError, match="2-D latent space"):
        latent_map(model, images, labels)
