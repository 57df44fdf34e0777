import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from vae_tut.latent import decode, encode, extent, grid_codes, interpolate, normal_quantile_codes
from vae_tut.models import build_model
from vae_tut.plots import history_curves, image_grid, latent_scatter


def test_encode_decode_in_batches_give_the_models_own_numbers():
    """encode: the model's posterior (an autoencoder's codes and None); decode: sigmoid of its logits.
    Batch by batch in eval mode, the same numbers as the whole set at once."""
    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    vae, ae = build_model("mlp", 3).eval(), build_model("cnn", 3, kind="ae").eval()
    with torch.no_grad():
        want_mean, want_var = vae.encode(x)
        want_codes = ae.encode(x)[0]
        want_images = torch.sigmoid(vae.decode(want_mean))
    mean, var = encode(vae, x, batch_size=16)
    assert torch.allclose(mean, want_mean, atol=1e-6) and torch.allclose(var, want_var, atol=1e-6)
    codes, none = encode(ae, x, batch_size=16)
    assert torch.allclose(codes, want_codes, atol=1e-6) and none is None
    images = decode(vae, mean, batch_size=7)
    assert images.shape == (50, 1, 28, 28) and torch.allclose(images, want_images, atol=1e-6)


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



def test_a_label_that_is_no_class_is_one_line():
    """Labels are class indices below 10 (both data sets have ten classes), checked before any loop over classes."""
    from vae_tut.errors import ConfigError

    codes, labels = torch.randn(5, 2), torch.tensor([0, 1, 2, 3, 10**9])
    with pytest.raises(ConfigError) as caught:
        latent_scatter(codes, labels)
    assert str(caught.value) == "labels must be class indices from 0 to 9, got 1000000000"


def _meta(x):
    return torch.empty_like(x, device="meta")


@pytest.mark.parametrize("kind, spoil", [("meta", _meta), ("sparse", lambda x: x.to_sparse())])
def test_a_meta_or_sparse_tensor_is_one_line(kind, spoil):
    """A tensor without values here (meta device) or stored sparse is refused in one line, not a torch traceback."""
    import matplotlib.pyplot as plt

    from vae_tut.errors import ConfigError

    images = "images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1]"
    for name, call, good, message in [
        ("encode", lambda x: encode(build_model("mlp", 2), x), torch.rand(3, 1, 28, 28), images),
        ("decode", lambda x: decode(build_model("mlp", 2), x), torch.randn(3, 2),
         "codes must be a float32 tensor [N, 2]"),
        ("extent", lambda x: extent(x), torch.randn(3, 2), "codes must be a float32 tensor [N, *]"),
        ("image_grid", lambda x: image_grid(x, nrow=3), torch.rand(3, 1, 28, 28), images),
        ("latent_scatter(codes)", lambda x: latent_scatter(x, torch.arange(3)), torch.randn(3, 2),
         "codes must be a float32 tensor [N, *]"),
        ("latent_scatter(labels)", lambda x: latent_scatter(torch.randn(3, 2), x), torch.arange(3),
         "integer tensor [N]"),
    ]:
        call(good)
        with pytest.raises(ConfigError) as caught:
            call(spoil(good))
        assert str(caught.value).endswith(f"{message}, got a {kind} tensor"), (name, str(caught.value))
        assert "\n" not in str(caught.value), name
        plt.close("all")
