import math

import pytest
import torch

from vae_tut.errors import ConfigError
from vae_tut.losses import gaussian_log_constant, kl_divergence, kl_per_dimension, reconstruction_loss, vae_loss


def test_reconstruction_loss_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    # image 1: squared error 1, image 2: 4 * 0.25 = 1 -> mean 1; / (2 * 0.05) = 10
    assert reconstruction_loss(x, x_hat, 0.05).item() == pytest.approx(10.0)
    assert reconstruction_loss(x, x_hat, 1.0).item() == pytest.approx(0.5)


def test_kl_by_hand():
    mean = torch.tensor([[1.0, 0.0]])
    var = torch.tensor([[1.0, math.e]])
    # dim 1: 0.5 * (1 + 1 - 1 - 0) = 0.5; dim 2: 0.5 * (e + 0 - 1 - 1) = 0.5 * (e - 2)
    expected = 0.5 + 0.5 * (math.e - 2)
    assert kl_divergence(mean, var).item() == pytest.approx(expected)
    assert kl_per_dimension(mean, var)[0, 0].item() == pytest.approx(0.5)


def test_kl_is_zero_only_at_the_prior():
    assert kl_divergence(torch.zeros(4, 3), torch.ones(4, 3)).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_divergence(torch.full((4, 3), 0.1), torch.ones(4, 3)).item() > 0


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mean = torch.tensor([[0.7, -1.2, 0.1]])
    var = torch.tensor([[0.3, 2.0, 0.05]])
    q = torch.distributions.Normal(mean, var.sqrt())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean().item()
    assert kl_divergence(mean, var).item() == pytest.approx(mc, rel=0.01)


def test_gaussian_constant_gives_true_log_likelihood():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    f = torch.rand(3, 1, 28, 28)
    c = 0.05
    exact = -torch.distributions.Normal(f, math.sqrt(c)).log_prob(x).flatten(1).sum(1).mean()
    ours = reconstruction_loss(x, f, c) + gaussian_log_constant(c)
    assert ours.item() == pytest.approx(exact.item(), rel=1e-5)


def test_vae_loss_for_autoencoder_has_no_kl():
    x = torch.rand(2, 1, 28, 28)
    terms = vae_loss(x, torch.zeros_like(x), torch.zeros(2, 2), None, 0.05)
    assert terms.kl.item() == 0.0
    assert terms.total.item() == pytest.approx(terms.recon.item())


def test_bad_c():
    for bad in (0, -0.05, float("nan"), float("inf"), "0.05", None):
        for call in (lambda c=bad: reconstruction_loss(torch.zeros(1, 1), torch.zeros(1, 1), c),
                     lambda c=bad: gaussian_log_constant(c)):
            with pytest.raises(ConfigError) as caught:
                call()
            assert str(caught.value) == f"decoder variance c must be a finite number > 0, got {bad!r}"


def test_kl_variants_by_formula():
    from vae_tut.losses import KL_VARIANTS, kl_term
    mean = torch.tensor([[0.5, -1.0]])
    v = torch.tensor([[0.4, 2.0]])
    exact = kl_divergence(mean, v)
    expected = {
        "exact": exact,
        # the variance output read as a standard deviation: variance v^2 in the formula
        "var-as-std": 0.5 * (v.pow(2) + mean.pow(2) - 1 - 2 * v.log()).sum(),
        # read as a log-variance: variance e^v
        "var-as-logvar": 0.5 * (v.exp() + mean.pow(2) - 1 - v).sum(),
        "mean-over-dims": exact / 2,
        "mean-over-pixels": exact / 784,
    }
    assert set(KL_VARIANTS) == set(expected)  # every variant the package offers has its formula checked here
    for variant, value in expected.items():
        assert kl_term(mean, v, variant).item() == pytest.approx(value.item()), variant
    with pytest.raises(ConfigError, match="unknown KL variant"):
        kl_term(mean, v, "per-batch")


def test_bernoulli_loss_is_the_negative_log_probability():
    from vae_tut.losses import bernoulli_reconstruction_loss, binarize
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 28, 28)
    x = binarize(torch.rand(3, 1, 28, 28), torch.Generator().manual_seed(1))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    exact = -torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1).mean()
    assert bernoulli_reconstruction_loss(x, logits).item() == pytest.approx(exact.item(), rel=1e-5)
    terms = vae_loss(x, logits, torch.zeros(3, 2), torch.ones(3, 2), 0.05, likelihood="bernoulli")
    assert terms.recon.item() == pytest.approx(exact.item(), rel=1e-5) and terms.kl.item() == 0.0
    with pytest.raises(ConfigError, match="unknown decoder likelihood"):
        vae_loss(x, logits, torch.zeros(3, 2), torch.ones(3, 2), 0.05, likelihood="poisson")


def test_binarize_keeps_intensity_on_average():
    from vae_tut.losses import binarize
    images = torch.full((200, 1, 28, 28), 0.3)
    assert binarize(images, torch.Generator().manual_seed(0)).mean().item() == pytest.approx(0.3, abs=0.01)


def test_vae_loss_refuses_images_outside_0_1():
    """A NaN pixel would make the loss NaN and a 0..255 image a loss of millions; both are refused."""
    must = "images must be a float tensor [N, ...] with values in [0, 1], got "
    for likelihood in ("gaussian", "bernoulli"):
        for bad, message in [(math.nan, must + "NaN values"), (255.0, " to 255 (divide 0..255 pixels by 255.0)")]:
            x = torch.rand(3, 1, 28, 28)
            x[1, 0, 5, 5] = bad
            with pytest.raises(ConfigError) as caught:
                vae_loss(x, torch.zeros_like(x), torch.zeros(3, 2), torch.ones(3, 2), 0.05, likelihood=likelihood)
            assert str(caught.value).startswith(must) and str(caught.value).endswith(message), (likelihood, bad)
