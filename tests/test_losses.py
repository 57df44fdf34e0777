import math

import pytest
import torch

from vae_tut.errors import ConfigError
from vae_tut.losses import (gaussian_log_constant, kl_divergence, kl_per_dimension,
                            reconstruction_loss, vae_loss)


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


@pytest.mark.parametrize("bad", [0, -0.05, float("nan"), float("inf"), "0.05", None])
def test_bad_c(bad):
    with pytest.raises(ConfigError, match="decoder variance c"):
        reconstruction_loss(torch.zeros(1, 1), torch.zeros(1, 1), bad)
    with pytest.raises(ConfigError):
        gaussian_log_constant(bad)
