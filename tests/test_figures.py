import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
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
from vae_tut.plots import BAR_KINDS, bits_per_dim_bars, neg_elbo_against_c


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _canvas(ax) -> torch.Tensor:
    return torch.as_tensor(ax.images[0].get_array())


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_panels_show_what_they_decode_and_encode(arch, data):
    """Each panel draws its own figure: the decoded prior samples, the decoded quantile grid with
    its end codes on the axes, the posterior means by class with the path over them."""
    from vae_tut.analysis import prior_samples
    from vae_tut.latent import decode, encode, normal_quantile_codes

    images, labels = data
    model = build_model(arch, 2)
    samples = prior_sample_grid(model, n_side=3)
    decoded = decode(model, prior_samples(9, 2, 0))
    assert _canvas(samples).shape == (3 * 29 + 1, 3 * 29 + 1)
    assert torch.allclose(_canvas(samples)[1:29, 1:29], decoded[0, 0]) and \
        torch.allclose(_canvas(samples)[59:87, 59:87], decoded[8, 0])
    grid = manifold(model, n_side=4)
    codes = normal_quantile_codes(4)
    assert torch.allclose(_canvas(grid)[88:116, 88:116], decode(model, codes)[15, 0])  # bottom right: largest z_1
    assert [t.get_text() for t in grid.get_xticklabels()] == ["-1.64", "1.64"]
    assert [t.get_text() for t in grid.get_yticklabels()] == ["1.64", "-1.64"]
    path = torch.linspace(-1, 1, 10).reshape(5, 2)
    scatter = latent_map(model, images, labels, class_names=[f"c{k}" for k in range(10)], path=path)
    means, _ = encode(model, images)
    for k, dots in enumerate(scatter.collections):  # one colour per class
        assert torch.allclose(torch.as_tensor(dots.get_offsets().data).float(), means[labels == k]), k
    assert [t.get_text() for t in scatter.get_legend().get_texts()] == [f"c{k}" for k in range(10)]
    assert scatter.get_lines()[0].get_xdata().tolist() == path[:, 0].tolist()
    assert len({id(ax.figure) for ax in (samples, grid, scatter)}) == 3  # each drew its own figure


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


# ---------------------------------------------------------------- chapters 9 and 10: likelihoods in one unit


def _is_white(colour) -> bool:
    return tuple(colour[:3]) == (1.0, 1.0, 1.0)


def test_neg_elbo_against_c_draws_curves_stars_and_marks_an_off_scale_value():
    cs = [0.0001, 0.001, 0.01, 0.05, 1.0]
    values = [117_000.0, 1_960.0, -595.0, -170.0, 760.0]
    ax = neg_elbo_against_c([("MNIST, fixed c", cs, values)], learned=[("MNIST, learned c", 0.02, -620.0)],
                            title="t")
    assert ax.get_xscale() == "log" and ax.get_title() == "t"
    assert _is_white(ax.figure.get_facecolor()) and _is_white(ax.get_facecolor())
    low, top = ax.get_ylim()
    assert top < 117_000 and top > 1_960 and low < -620          # the outlier is left off the scale ...
    texts = [t.get_text() for t in ax.texts]
    assert any("117,000" in t and "off scale" in t for t in texts)  # ... and written beside its marker
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == cs and max(line.get_ydata()) == top
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["MNIST, fixed c", "MNIST, learned c"]


def test_neg_elbo_against_c_keeps_the_full_scale_without_outliers():
    ax = neg_elbo_against_c([("a", [0.01, 0.1, 1.0], [-100.0, 50.0, 300.0])])
    assert not ax.texts and ax.get_ylim()[1] >= 300.0


def test_neg_elbo_against_c_refuses_bad_input():
    for curves, learned, message in [
        ([("a", [0.1, 1.0], [1.0])], (), "curve 'a' needs one -ELBO per value of c, and at least one"),
        ([("a", [0.0, 1.0], [1.0, 2.0])], (), "c must be a finite number > 0, got 0.0"),
        ([("a", [0.1], [float("nan")])], (), "-ELBO must be a finite number, got nan"),
        ([], (), "nothing to plot: give at least one curve or learned point"),
        ([], [("b", -1.0, 3.0)], "learned c must be a finite number > 0, got -1.0"),
    ]:
        with pytest.raises(ConfigError) as caught:
            neg_elbo_against_c(curves, learned)
        assert str(caught.value) == message


def test_bits_per_dim_bars_one_bar_per_row_with_its_number_and_floors():
    rows = [("uniform", 8.0, "reference"), ("independent pixels", 1.95, "reference"),
            ("MLP VAE", 7.31, "vae"), ("learned c", 6.62, "vae"), ("FFJORD", 0.99, "published")]
    ax = bits_per_dim_bars(rows, floors=[None, None, 7.16, 6.3, None], title="bits")
    bars = ax.patches
    assert len(bars) == len(rows)
    assert [round(b.get_width(), 2) for b in bars] == [8.0, 1.95, 7.31, 6.62, 0.99]
    assert [b.get_facecolor()[:3] for b in bars][0] == pytest.approx((0.6, 0.6, 0.6))
    assert [t.get_text() for t in ax.texts] == ["8.00", "1.95", "7.31", "6.62", "0.99"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r[0] for r in rows]
    assert ax.yaxis_inverted()                                      # the first row on top
    floors = [line for line in ax.get_lines() if line.get_color() == "black"]
    assert sorted(line.get_xdata()[0] for line in floors) == [6.3, 7.16]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == len(BAR_KINDS) + 1 and "lowest possible at the model's c" in legend
    assert _is_white(ax.figure.get_facecolor()) and ax.get_title() == "bits"


def test_bits_per_dim_bars_refuses_bad_input():
    for rows, floors, message in [
        ([], None, "bits_per_dim_bars needs at least one row (label, bits, kind)"),
        ([("a", 1.0, "flow")], None, "unknown kind of bar 'flow'; choose one of: reference, vae, published"),
        ([("a", -1.0, "vae")], None, "bits per dimension must be a finite number >= 0, got -1.0"),
        ([("a", 1.0, "vae")], [None, None], "floors must have one entry per row (1), got 2"),
    ]:
        with pytest.raises(ConfigError) as caught:
            bits_per_dim_bars(rows, floors)
        assert str(caught.value) == message
