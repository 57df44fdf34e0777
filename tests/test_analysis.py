import math

import pytest
import torch
from torch import nn

from vae_tut.analysis import (
    active_mask,
    aggregate_std,
    distortion,
    kl_per_dim,
    nearest_code,
    negative_elbo_nats,
    posterior_samples,
    prior_samples,
    rate,
    unit_activity,
)
from vae_tut.errors import ConfigError
from vae_tut.latent import encode
from vae_tut.losses import gaussian_log_constant, kl_divergence
from vae_tut.models import build_model


class Fixed(nn.Module):
    """A stand-in VAE: the first pixels p of an image give its posterior mean 2p - 1, the variance is fixed.

    ``decode`` returns logits whose sigmoid is 0.5 everywhere, so every reconstruction is grey.
    """

    def __init__(self, z: int = 2, var: float = 1.0) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.z, self.var = z, var

    def encode(self, x):
        mean = 2 * x.flatten(1)[:, :self.z] - 1
        return mean, torch.full_like(mean, self.var)

    def decode(self, z):
        return torch.zeros(len(z), 1, 28, 28)


def images_with_means(means: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] whose posterior means under :class:`Fixed` are ``means`` (in [-1, 1])."""
    x = torch.zeros(len(means), 1, 28, 28)
    x.view(len(means), -1)[:, :means.shape[1]] = (means + 1) / 2
    return x


def test_prior_and_posterior_samples_are_seeded_and_shaped():
    a, b = prior_samples(500, 3, seed=4), prior_samples(500, 3, seed=4)
    assert a.shape == (500, 3) and torch.equal(a, b)
    assert not torch.equal(a, prior_samples(500, 3, seed=5))
    means = torch.tensor([[10.0, -10.0]]).repeat(4000, 1)
    z = posterior_samples(means, torch.full_like(means, 4.0), seed=1)
    assert z.mean(0).tolist() == pytest.approx([10.0, -10.0], abs=0.15)
    assert z.std(0).tolist() == pytest.approx([2.0, 2.0], abs=0.1)
    assert torch.equal(posterior_samples(means, torch.zeros_like(means)), means)


def test_kl_per_dim_known_values():
    # dimension 1 has mean 1 (KL 0.5), dimension 2 mean 0 (KL 0); the variance is the prior's
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    kl = kl_per_dim(Fixed(var=1.0), images_with_means(means))
    assert kl.tolist() == pytest.approx([0.5, 0.0])
    # with variance 0.5 each dimension adds 0.5 * (0.5 - 1 - log 0.5)
    kl = kl_per_dim(Fixed(var=0.5), images_with_means(means))
    extra = 0.5 * (0.5 - 1 - math.log(0.5))
    assert kl.tolist() == pytest.approx([0.5 + extra, extra])


def test_kl_per_dim_sums_to_the_loss_kl():
    model = build_model("mlp", 3).eval()
    x = torch.rand(20, 1, 28, 28)
    mean, var = model.encode(x)
    assert kl_per_dim(model, x).sum().item() == pytest.approx(kl_divergence(mean, var).item(), rel=1e-5)
    assert rate(model, x) == pytest.approx(kl_divergence(mean, var).item(), rel=1e-5)


def test_activity_and_active_mask():
    # dimension 1 varies across images (variance 1), dimension 2 barely (variance 1e-4)
    means = torch.stack([torch.tensor([1.0, -1.0] * 50), torch.tensor([0.01, -0.01] * 50)], dim=1)
    act = unit_activity(means)
    assert act[0].item() == pytest.approx(100 / 99, rel=1e-5)   # unbiased variance of +-1
    assert act[1].item() == pytest.approx(1e-4 * 100 / 99, rel=1e-4)
    means_back, _ = encode(Fixed(), images_with_means(means))
    assert active_mask(unit_activity(means_back)).tolist() == [True, False]
    assert active_mask(unit_activity(means_back), threshold=1e-5).tolist() == [True, True]
    assert active_mask(unit_activity(means_back), threshold=2.0).tolist() == [False, False]


def test_aggregate_std_law_of_total_variance():
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    var = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert aggregate_std(means, var).tolist() == pytest.approx([1.0, 1.0])
    # encodings that are the prior itself (mean 0, var 1) have the prior's spread
    assert aggregate_std(torch.zeros(5, 3), torch.ones(5, 3)).tolist() == pytest.approx([1.0] * 3)


def test_nearest_code_by_hand_and_in_batches():
    codes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[3.0, 4.0], [9.0, 0.0], [-1.0, 0.0]])
    d, i = nearest_code(samples, codes, batch_size=2)
    assert d.tolist() == pytest.approx([5.0, 1.0, 1.0])
    assert i.tolist() == [0, 1, 0]
    torch.manual_seed(0)
    s, c = torch.randn(300, 5), torch.randn(200, 5)
    brute = torch.cdist(s, c).min(1).values
    assert torch.allclose(nearest_code(s, c, batch_size=64)[0], brute)



def test_distortion_of_a_grey_decoder():
    # sigmoid(0) = 0.5 everywhere, so the error is (x - 0.5)^2 whatever the code
    x = torch.zeros(4, 1, 28, 28)
    x[:2] = 1.0
    assert distortion(Fixed(), x) == pytest.approx(0.25)


def test_negative_elbo_nats():
    # D * mse / (2c) + (D/2) log(2 pi c) + KL, here with D = 784
    mse, kl, c = 0.04, 8.0, 0.05
    expected = 784 * 0.04 / 0.1 + 392 * math.log(2 * math.pi * 0.05) + 8.0
    assert negative_elbo_nats(mse, kl, c) == pytest.approx(expected)
    # the training loss plus the constant
    assert negative_elbo_nats(mse, kl, c) == pytest.approx(784 * mse / (2 * c) + kl + gaussian_log_constant(c))
    # for fixed errors the bound is lowest when c equals the mean squared error
    values = {cc: negative_elbo_nats(mse, kl, cc) for cc in (0.02, 0.03, 0.04, 0.05, 0.08)}
    assert min(values, key=values.get) == 0.04
    with pytest.raises(ConfigError, match="decoder variance c must be a finite number > 0"):
        negative_elbo_nats(mse, kl, 0.0)



def test_marginal_kl_is_zero_when_every_posterior_is_the_prior():
    from vae_tut.analysis import marginal_kl
    assert marginal_kl(torch.zeros(50, 3), torch.ones(50, 3), n_samples=300) == pytest.approx(0.0, abs=1e-5)


def test_marginal_kl_of_one_image_is_its_kl():
    from vae_tut.analysis import marginal_kl
    from vae_tut.losses import kl_divergence
    mean, var = torch.tensor([[1.0, -0.5]]), torch.tensor([[0.3, 2.0]])
    exact = kl_divergence(mean, var).item()
    assert marginal_kl(mean, var, n_samples=40_000) == pytest.approx(exact, rel=0.03)


def test_marginal_kl_splits_the_kl_term():
    from vae_tut.analysis import marginal_kl
    from vae_tut.losses import kl_divergence
    grid = torch.arange(10.0) - 4.5
    means = torch.cartesian_prod(grid, grid)               # 100 posteriors on a grid, 1 apart
    variances = torch.full((100, 2), 0.0025)               # standard deviation 0.05: no overlap
    average_kl = kl_divergence(means, variances).item()
    mutual = average_kl - marginal_kl(means, variances, n_samples=20_000)
    # separated posteriors: the code tells which of the N images it came from, I(x; z) = log N
    assert mutual == pytest.approx(math.log(100), abs=0.1)
    # overlapping posteriors carry less
    wide = torch.full((100, 2), 1.0)
    assert kl_divergence(means, wide).item() - marginal_kl(means, wide, n_samples=4000) < math.log(100) - 1


def test_marginal_kl_holds_for_tight_posteriors_far_from_the_origin():
    """The mixture's log density is expanded into matrix products; with posterior variances of 1e-8 at
    codes 3 away from the origin its terms are about 1e9, and the estimate must still be right.
    Two separated components: KL = -log 2 - (z/2)(1 + log v) + (|a|^2 + z v)/2."""
    from vae_tut.analysis import marginal_kl
    z, v = 10, 1e-8
    means = torch.stack([torch.full((z,), 3.0), torch.full((z,), -3.0)])
    exact = -math.log(2) - z / 2 * (1 + math.log(v)) + (9.0 * z + z * v) / 2
    assert marginal_kl(means, torch.full((2, z), v), n_samples=4000) == pytest.approx(exact, rel=1e-3)


def test_aggregate_gaussian_matches_the_moments():
    from vae_tut.analysis import aggregate_gaussian_samples
    g = torch.Generator().manual_seed(1)
    means = torch.randn(500, 2, generator=g) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + torch.tensor([3.0, -1.0])
    variances = torch.full((500, 2), 0.1)
    s = aggregate_gaussian_samples(means, variances, 50_000)
    assert torch.allclose(s.mean(0), means.mean(0), atol=0.05)
    expected = torch.cov(means.T) + 0.1 * torch.eye(2)
    assert torch.allclose(torch.cov(s.T), expected, atol=0.08)


def test_dequantized_distortion_rate_gives_chapter_10s_8bit_elbo():
    from vae_tut.analysis import dequantized_distortion_rate, elbo_bits_per_dim_8bit
    from vae_tut.evaluate import bits_per_dim_8bit, dequantize, elbo

    torch.manual_seed(0)
    model = build_model("mlp", latent_dim=2).eval()
    images = torch.randint(0, 256, (12, 1, 28, 28)).float() / 255      # 8-bit images
    mse, kl = dequantized_distortion_rate(model, images, samples=3, seed=5)
    for c in (0.01, 0.05, 1.0):   # the ELBO of the same copies with the same codes, straight from evaluate
        direct = bits_per_dim_8bit(elbo(model, dequantize(images, 5), c, 3, seed=6).mean().item())
        assert elbo_bits_per_dim_8bit(mse, kl, c) == pytest.approx(direct, abs=1e-5)
    # the 8-bit bound is 8 bits plus the -ELBO in bits per pixel
    assert elbo_bits_per_dim_8bit(mse, kl, 0.05) == pytest.approx(
        8 + negative_elbo_nats(mse, kl, 0.05) / (784 * math.log(2)))
    # a grey decoder's error at the copies: E[((k + u)/256 - 1/2)^2], u uniform
    x = torch.zeros(4, 1, 28, 28)
    grey_mse, grey_kl = dequantized_distortion_rate(Fixed(), x, samples=2)
    assert grey_mse == pytest.approx((0.5 - 0.5 / 256) ** 2, rel=0.02) and grey_kl >= 0
    with pytest.raises(ConfigError, match="8-bit"):
        dequantized_distortion_rate(model, torch.full((2, 1, 28, 28), 0.3333))
