"""The two terms of the VAE loss (the negative ELBO), derived in chapter 4.

With the decoder p(x|z) = N(f(z), cI) over D = 784 pixels,

    -log p(x|z) = ||x - f(z)||^2 / (2c) + (D/2) log(2 pi c),

so the training loss keeps the first part (:func:`reconstruction_loss`) and
the constant (:func:`gaussian_log_constant`) is added back when the book
reports log-likelihoods in nats.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .errors import ConfigError
from .data import N_PIXELS


def check_c(c: object) -> float:
    """Return ``c`` as a float if it is a finite number > 0, else raise :class:`ConfigError`."""
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
        raise ConfigError(f"decoder variance c must be a finite number > 0, got {c!r}")
    return float(c)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, c: float) -> torch.Tensor:
    """``||x - x_hat||^2 / (2c)`` summed over pixels, averaged over the batch."""
    check_c(c)
    if x.shape != x_hat.shape:
        raise ConfigError(f"images and reconstructions differ in shape: {list(x.shape)} vs {list(x_hat.shape)}")
    return (x - x_hat).pow(2).flatten(1).sum(1).mean() / (2.0 * c)


def kl_divergence(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag(var)) || N(0, I)) summed over latent dimensions, averaged over the batch.

    Closed form (chapter 4): ``0.5 * sum(var + mean^2 - 1 - log var)``.
    """
    return kl_per_dimension(mean, var).sum(1).mean()


def kl_per_dimension(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """The KL of each latent dimension, ``[batch, z]`` (chapter 8 counts the active ones)."""
    if mean.shape != var.shape:
        raise ConfigError(f"mean and variance differ in shape: {list(mean.shape)} vs {list(var.shape)}")
    if not bool((var > 0).all()):
        raise ConfigError("every variance must be > 0 (the KL needs log var)")
    return 0.5 * (var + mean.pow(2) - 1.0 - var.log())


def gaussian_log_constant(c: float, n_pixels: int = N_PIXELS) -> float:
    """``(D/2) log(2 pi c)``: add it to the reconstruction loss to get -log p(x|z) in nats."""
    return 0.5 * n_pixels * math.log(2.0 * math.pi * check_c(c))


class LossTerms(NamedTuple):
    """Batch-averaged reconstruction and KL terms; ``total`` is the negative ELBO without the constant."""

    recon: torch.Tensor
    kl: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.recon + self.kl


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor,
             var: torch.Tensor | None, c: float) -> LossTerms:
    """Both terms for a batch; with ``var=None`` (a plain autoencoder) the KL term is zero."""
    recon = reconstruction_loss(x, torch.sigmoid(logits.float()), c)
    kl = kl_divergence(mean, var) if var is not None else recon.new_zeros(())
    return LossTerms(recon, kl)
