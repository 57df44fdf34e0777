import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from vae_tut.latent import decode, encode, extent, grid_codes, interpolate, normal_quantile_codes
from vae_tut.models import build_model
from vae_tut.plots import history_curves, image_grid, latent_scatter


def test_encode_decode_shapes_vae_and_ae():
    x = torch.rand(50, 1, 28, 28)
    vae, ae = build_model("mlp", 3), build_model("cnn", 3, kind="ae")
    mean, var = encode(vae, x, batch_size=16)
    assert mean.shape == var.shape == (50, 3)
    codes, none = encode(ae, x, batch_size=16)
    assert codes.shape == (50, 3) and none is None
    img = decode(vae, mean, batch_size=7)
    assert img.shape == (50, 1, 28, 28) and 0 <= img.min() and img.max() <= 1


class KnownEncoder(torch.nn.Module):
    """A stand-in VAE whose posterior is known: mean 4p - 2 from the first two pixels p, variance 0.25."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.modes = []

    def encode(self, x):
        self.modes.append(self.training)
        mean = 4 * x.flatten(1)[:, :2] - 2
        return mean, torch.full_like(mean, 0.25)


def test_encode_gives_the_posterior_mean():
    """encode returns the encoder's means and variances (not samples), batch by batch, in eval mode."""
    x = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model = KnownEncoder().train()
    means, variances = encode(model, x, batch_size=3)
    assert torch.equal(means, 4 * x.flatten(1)[:, :2] - 2)
    assert torch.equal(variances, torch.full((10, 2), 0.25))
    assert model.modes == [False] * 4 and model.training  # 4 batches in eval mode, training mode restored
    # a real VAE: the same means on every call, while its forward pass draws a new z each time
    vae = build_model("mlp", 2).train()
    first, again = encode(vae, x)[0], encode(vae, x)[0]
    assert torch.equal(first, again)


def test_grid_codes_layout():
    g = grid_codes((-1, -2), (1, 2), n=3)
    assert g.shape == (9, 2)
    assert g[0].tolist() == [-1.0, 2.0]      # top-left: smallest x, largest y
    assert g[-1].tolist() == [1.0, -2.0]     # bottom-right
    assert g[4].tolist() == [0.0, 0.0]


def test_normal_quantile_codes_are_symmetric_quantiles():
    g = normal_quantile_codes(5, tail=0.05)
    assert g[:, 0].min().item() == pytest.approx(-1.6449, abs=1e-3)
    assert g[:, 0].max().item() == pytest.approx(1.6449, abs=1e-3)
    assert g.sum().item() == pytest.approx(0.0, abs=1e-4)


def test_interpolate_ends_and_midpoint():
    a, b = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = interpolate(a, b, steps=5)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert path[2].tolist() == [2.0, 0.0]


def test_extent_with_margin():
    lo, hi = extent(torch.tensor([[0.0, 0.0], [10.0, 20.0]]), margin=0.1)
    assert lo == pytest.approx((-1.0, -2.0)) and hi == pytest.approx((11.0, 22.0))


def test_plots_draw():
    images = torch.rand(10, 1, 28, 28)
    ax = image_grid(images, nrow=5, title="t")
    canvas = torch.as_tensor(ax.images[0].get_array())
    assert canvas.shape == (2 * 29 + 1, 5 * 29 + 1)
    assert torch.equal(canvas[1:29, 1:29], images[0, 0]) and torch.equal(canvas[30:58, 59:87], images[7, 0])
    assert (canvas[0] == 1).all() and (canvas[:, 29] == 1).all()  # the lines between the images
    ax = latent_scatter(torch.randn(100, 2), torch.arange(100) % 10)
    assert len(ax.collections) == 10
    hist = [{"epoch": e, **{f"{s}_{t}": 1.0 / e for s in ("train", "test")
                              for t in ("recon", "kl", "total")}} for e in (1, 2, 3)]
    axes = history_curves(hist)
    assert len(axes) == 3 and len(axes[0].lines) == 2
    matplotlib.pyplot.close("all")
