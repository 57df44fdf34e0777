"""How a trained VAE uses its latent space (chapters 8-9), and its loss in batch norm's two modes (chapter 6)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from . import validation
from .data import N_PIXELS
from .errors import ConfigError
from .evaluate import bits_per_dim_8bit, dequantize, elbo_terms
from .latent import decode, encode
from .losses import check_c, gaussian_log_constant, kl_per_dimension, vae_loss
from .models import check_latent_dim
from .validation import finite, same_shape, whole

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active when its activity exceeds this


def _posteriors(means: object, variances: object, rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    means = validation.codes(means, "means", rows=rows)
    variances = validation.codes(variances, "variances", rows=rows, least=0.0)
    same_shape(means, variances, "means and variances")
    return means, variances


def _generator(seed: object) -> torch.Generator:
    return torch.Generator().manual_seed(validation.seed(seed))


def prior_samples(n: int, z: int, seed: int = 0) -> torch.Tensor:
    """``n`` codes drawn from the prior N(0, I) in ``z`` dimensions, reproducibly (chapters 8-9)."""
    whole(n, "number of samples", 1)
    return torch.randn(n, check_latent_dim(z), generator=_generator(seed))


def posterior_samples(means: torch.Tensor, variances: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One code ``z ~ q(z|x) = N(mean, diag(var))`` per row, reproducibly (chapters 8-9)."""
    means, variances = _posteriors(means, variances)
    return means + variances.sqrt() * torch.randn(means.shape, generator=_generator(seed))


def kl_per_dim(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Average KL(q(z_j|x) || N(0, 1)) over ``images`` for each latent dimension j, ``[z]`` (chapter 8)."""
    means, variances = encode(model, images)
    if variances is None:
        raise ConfigError("an autoencoder has no posterior variances: the KL per dimension is a VAE's")
    return kl_per_dimension(means, variances).mean(0)


def unit_activity(means: torch.Tensor) -> torch.Tensor:
    """Burda et al.'s activity per dimension, the variance of E_q[z_j] over two or more images (chapter 8)."""
    return validation.codes(means, "means", rows=2).var(0)


def active_mask(activity: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> torch.Tensor:
    """Which latent dimensions are active: ``activity > threshold`` (chapter 8)."""
    validation.tensor(activity, "activity", (None,), least=0.0)
    return activity > finite(threshold, "threshold", 0)


def aggregate_std(means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Standard deviation per dimension of the aggregate posterior (1/N) sum_x q(z|x), ``[z]`` (chapter 9)."""
    means, variances = _posteriors(means, variances)
    return (means.var(0, unbiased=False) + variances.mean(0)).sqrt()  # the law of total variance


def marginal_kl(
    means: torch.Tensor, variances: torch.Tensor, n_samples: int = 2000, seed: int = 0, batch_size: int = 256
) -> float:
    """KL(q(z) || p(z)) in nats of the aggregate posterior, by Monte Carlo with its exact density (chapter 8)."""
    means, variances = _posteriors(means, variances)
    if float(variances.min()) <= 0:
        raise ConfigError("every variance must be > 0 (log q(z) needs it)")
    whole(n_samples, "n_samples", 1)
    whole(batch_size, "batch size", 1)
    gen = _generator(seed)
    n, z = means.shape
    pick = torch.randint(n, (n_samples,), generator=gen)
    samples = means[pick] + variances[pick].sqrt() * torch.randn(n_samples, z, generator=gen)
    # log N(s; m, v) = log_norm - (s^2 @ 1/v - 2 s @ m/v + sum m^2/v) / 2: no [batch, N, z] tensor, in float64
    mean64, var64 = means.double(), variances.double()
    inv = var64.reciprocal()
    log_norm = -0.5 * (var64.log() + math.log(2 * math.pi)).sum(1) - 0.5 * (mean64.pow(2) * inv).sum(1)
    total = 0.0
    for start in range(0, n_samples, batch_size):
        s = samples[start : start + batch_size].double()
        sq = s.pow(2) @ inv.T - 2 * s @ (mean64 * inv).T  # [batch, N], without the constant in log_norm
        log_q = torch.logsumexp(log_norm[None] - 0.5 * sq, dim=1) - math.log(n)
        log_p = -0.5 * (s.pow(2).sum(1) + z * math.log(2 * math.pi))
        total += float((log_q - log_p).sum())
    return total / n_samples


def aggregate_gaussian_samples(means: torch.Tensor, variances: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` codes from the Gaussian with the aggregate posterior's mean and full covariance (chapter 8)."""
    means, variances = _posteriors(means, variances, rows=2)  # a covariance needs two codes
    whole(n, "number of samples", 1)
    gen, z = _generator(seed), means.shape[1]
    cov = torch.cov(means.T.double()).reshape(z, z) + torch.diag(variances.mean(0).double())
    eps = torch.randn(n, z, generator=gen, dtype=torch.float64)
    return (means.mean(0).double() + eps @ torch.linalg.cholesky(cov).T).float()


def nearest_code(
    samples: torch.Tensor, codes: torch.Tensor, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each row of ``samples`` to the nearest row of ``codes``, and its index (chapters 2, 8)."""
    samples = validation.codes(samples, "samples")
    codes = validation.codes(codes, "codes", samples.shape[1])
    whole(batch_size, "batch size", 1)
    best = [torch.cdist(samples[i : i + batch_size], codes).min(1) for i in range(0, len(samples), batch_size)]
    return torch.cat([b.values for b in best]), torch.cat([b.indices for b in best])


def distortion(model: nn.Module, images: torch.Tensor, seed: int = 0) -> float:
    """Mean squared error per pixel between ``images`` and their decodings of one z ~ q(z|x) (chapter 9)."""
    validation.seed(seed)
    means, variances = encode(model, images)
    codes = means if variances is None else posterior_samples(means, variances, seed)
    return float((decode(model, codes) - images).pow(2).mean())


def rate(model: nn.Module, images: torch.Tensor) -> float:
    """Average KL(q(z|x) || p(z)) over ``images`` in nats: the information the codes carry (chapter 9)."""
    return float(kl_per_dim(model, images).sum())


def negative_elbo_nats(mse_per_pixel: float, kl: float, c: float, n_pixels: int = N_PIXELS) -> float:
    """The full negative ELBO in nats per image, ``D * mse / (2c) + (D/2) log(2 pi c) + KL`` (chapter 9)."""
    finite(mse_per_pixel, "mean squared error per pixel", 0)
    finite(kl, "KL", 0)
    whole(n_pixels, "number of pixels", 1)
    return n_pixels * mse_per_pixel / (2.0 * check_c(c)) + gaussian_log_constant(c, n_pixels) + kl


def dequantized_distortion_rate(
    model: nn.Module, images: torch.Tensor, samples: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Mean squared error per pixel and KL in nats at dequantised 8-bit ``images``, over ``samples`` z (chapter 9)."""
    copies = dequantize(images, seed)
    n_pixels = copies[0].numel()
    expected, kl = elbo_terms(model, copies, 1.0, samples, seed=seed + 1)  # type: ignore[arg-type]  # a VAE
    squared = -2.0 * (expected.double() + gaussian_log_constant(1.0, n_pixels))  # at c = 1: ||x - f(z)||^2
    return float(squared.mean()) / n_pixels, float(kl.double().mean())


def elbo_bits_per_dim_8bit(mse_per_pixel: float, kl: float, c: float, n_pixels: int = N_PIXELS) -> float:
    """Upper bound on 8-bit bits per dimension from the ELBO at dequantised images (chapter 9)."""
    return float(bits_per_dim_8bit(-negative_elbo_nats(mse_per_pixel, kl, c, n_pixels), n_pixels))


def loss_in_batchnorm_mode(
    model: nn.Module, images: torch.Tensor, c: float, mode: str, batch_size: int = 256, seed: int = 0
) -> dict[str, float]:
    """Mean reconstruction, KL and total loss per image of a copy in batch norm ``mode`` ("train"/"eval", chapter 6)."""
    validation.one_of(mode, ("train", "eval"), "mode")
    if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
        raise ConfigError("the loss in a batch-norm mode needs a VAE (a model with encode and decode)")
    validation.images(images)
    c = check_c(c)
    whole(batch_size, "batch size", 1)
    gen, n = _generator(seed), len(images)
    copy_: Any = copy.deepcopy(model).train(mode == "train")  # a VAE: encode and decode, checked above
    device = next(copy_.parameters()).device
    order = torch.randperm(n, generator=gen)
    recon = kl = 0.0
    eps = None  # one noise row per image, drawn at once: the same eps whatever the batch size
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = images[order[start : start + batch_size]].to(device)
            means, variances = copy_.encode(x)
            if eps is None:
                eps = torch.randn(n, means.shape[1], generator=gen).to(device)
            codes = means + variances.sqrt() * eps[start : start + len(x)]
            terms = vae_loss(x, copy_.decode(codes), means, variances, c)
            recon += float(terms.recon) * len(x)
            kl += float(terms.kl) * len(x)
    return {"recon": recon / n, "kl": kl / n, "total": (recon + kl) / n}
