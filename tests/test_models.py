import re
from pathlib import Path

import pytest
import torch

from vae_tut.errors import ConfigError
from vae_tut.models import VAE, Autoencoder, CNNDecoder, CNNEncoder, FCDecoder, FCEncoder, build_model, count_parameters

LISTINGS = Path(__file__).with_name("report_listings.txt").read_text()


def _report_listing(name: str) -> str:
    """The report's printed module ``name`` (section 3), from the listing file."""
    block = re.search(rf"^{name}\(\n.*?^\)$", LISTINGS, re.S | re.M)
    assert block, name
    return block.group(0)


def test_print_matches_report_listing():
    for cls in (FCEncoder, FCDecoder, CNNEncoder, CNNDecoder):
        # torch >= 2.6 also prints BatchNorm's `bias=True`; the report's torch did not.
        ours = str(cls(2)).replace(", bias=True, track_running_stats", ", track_running_stats")
        expected = _report_listing(cls.__name__)
        strip = lambda text: [line.strip() for line in text.splitlines()]
        assert strip(ours) == strip(expected), cls.__name__


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_forward_pass_is_encode_reparameterize_decode(arch):
    """The training pass: the posterior of encode, z = mean + sqrt(var) eps, the logits of decode at z."""
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for z in (1, 2, 3, 20):
        model = build_model(arch, z).eval()
        with torch.no_grad():
            torch.manual_seed(1)
            out = model(x)
            mean, var = model.encode(x)
            torch.manual_seed(1)
            eps = torch.randn(5, z)
            assert out.mean.shape == (5, z) and out.logits.shape == (5, 1, 28, 28), z
            assert torch.equal(out.mean, mean) and torch.equal(out.var, var), z
            assert torch.allclose(out.z, mean + var.sqrt() * eps), z
            assert torch.allclose(out.logits, model.decode(out.z), atol=1e-6), z
            assert model.decode(torch.randn(7, z)).shape == (7, 1, 28, 28), z


def test_conditional_vae_decodes_each_label():
    model = build_model("mlp", 2, kind="cvae")
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 9, 3])
    out = model(x, y)
    assert out.logits.shape == (4, 1, 28, 28) and out.mean.shape == (4, 2)
    z = torch.zeros(2, 2)
    a, b = model.decode(z, torch.tensor([1, 1])), model.decode(z, torch.tensor([1, 7]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])  # the label reaches the decoder
    with pytest.raises(ConfigError, match="class indices"):
        model.decode(z, torch.tensor([1, 10]))
    with pytest.raises(ConfigError, match="MLP"):
        build_model("cnn", 2, kind="cvae")


def test_learned_variance_is_a_parameter():
    model = build_model("mlp", 2, learn_c=True)
    assert any(p is model.log_c for p in model.parameters()) and float(model.log_c.detach()) == 0.0
    assert build_model("mlp", 2).log_c is None


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_autoencoder_is_deterministic(arch):
    model = build_model(arch, 3, kind="ae").eval()
    assert isinstance(model, Autoencoder)
    x = torch.rand(4, 1, 28, 28)
    a, b = model(x), model(x)
    assert a.z.shape == (4, 3) and a.var is None
    assert torch.equal(a.logits, b.logits)


def test_cnn_decoder_upsamples_4_7_14_28():
    dec = CNNDecoder(2)
    h = dec.activation(dec.fc(torch.randn(2, 2))).view(-1, 32, 4, 4)
    sizes = []
    for layer in dec.conv_transpose_layers:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            sizes.append(h.shape[-1])
    assert sizes == [7, 14, 28]


def test_variance_is_softplus_plus_floor():
    model = build_model("mlp", 2)
    x = torch.rand(3, 1, 28, 28)
    h = model.encoder(x)
    mean, var = model.encode(x)
    assert torch.allclose(mean, h[:, :2])
    assert torch.allclose(var, torch.nn.functional.softplus(h[:, 2:]) + 1e-8)


def test_encoder_variance_is_not_bounded_by_one():
    # the report says softplus maps to [0, 1]; our encoder's variance grows past 1 with its input
    model = build_model("mlp", 2)
    last = model.encoder.encode_layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[2:] = 5.0  # the two variance outputs
    _, var = model.encode(torch.rand(3, 1, 28, 28))
    assert (var > 4.9).all() and (var < 5.1).all()


def test_gradient_flows_through_reparameterisation():
    mean = torch.zeros(1000, 2, requires_grad=True)
    var = torch.full((1000, 2), 4.0, requires_grad=True)
    torch.manual_seed(0)
    z = VAE.reparameterize(mean, var)
    z.pow(2).sum().backward()
    # d/dmean E[z^2] = 2 mean = 0 on average; d/dvar E[z^2] = 1 per sample
    assert mean.grad is not None and var.grad is not None
    assert var.grad.mean().item() == pytest.approx(1.0, abs=0.1)
    assert (var.grad != 0).all()


def test_parameter_count_of_mlp():
    enc = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 + 10 * 4 + 4
    dec = 2 * 10 + 10 + 10 * 100 + 100 + 100 * 300 + 300 + 300 * 784 + 784
    assert count_parameters(build_model("mlp", 2)) == enc + dec


def test_bad_latent_size():
    for bad in (0, -1, 2.5, "2", True, None):
        with pytest.raises(ConfigError) as caught:
            build_model("mlp", bad)
        assert str(caught.value) == f"latent size z must be a whole number from 1 to 4096, got {bad!r}"


def test_unknown_arch_and_kind():
    with pytest.raises(ConfigError, match="unknown architecture 'rnn'"):
        build_model("rnn", 2)
    with pytest.raises(ConfigError, match="unknown model kind 'gan'"):
        build_model("mlp", 2, kind="gan")


def test_hidden_width_changes_only_the_third_layer():
    from vae_tut.errors import ConfigError
    from vae_tut.models import build_model
    narrow, wide = build_model("mlp", 2), build_model("mlp", 2, hidden=20)
    shapes = lambda m: [tuple(p.shape) for p in m.parameters()]
    diff = [(a, b) for a, b in zip(shapes(narrow), shapes(wide)) if a != b]
    assert diff == [((10, 100), (20, 100)), ((10,), (20,)), ((4, 10), (4, 20)),
                    ((10, 2), (20, 2)), ((10,), (20,)), ((100, 10), (100, 20))]
    assert wide(torch.rand(3, 1, 28, 28)).logits.shape == (3, 1, 28, 28)
    with pytest.raises(ConfigError, match="MLP only"):
        build_model("cnn", 2, hidden=20)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_codes_and_images_of_the_wrong_kind_are_one_line(arch):
    """A code of the wrong width, integer codes or a numpy image: the package's error, not torch's."""
    import numpy as np

    for kind in ("vae", "ae"):
        model = build_model(arch, 3, kind=kind)
        for bad, message in [(torch.zeros(4, 2), r"codes must be a float32 tensor \[N, 3\], got shape \[4, 2\]"),
                             (torch.zeros(4, 3, dtype=torch.int64), "got torch.int64"),
                             (torch.zeros(3), r"got shape \[3\]")]:
            with pytest.raises(ConfigError, match=message):
                model.decode(bad)
        with pytest.raises(ConfigError, match="got a numpy.ndarray"):
            model.encode(np.zeros((2, 1, 28, 28), dtype=np.float32))
