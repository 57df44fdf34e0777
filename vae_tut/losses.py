"""The two terms of the VAE loss, the negative ELBO less its constant (chapter 4), and chapter 5's Bernoulli decoder."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .data import N_PIXELS
from .errors import ConfigError
from .validation import images, one_of, positive, tensor

LIKELIHOODS = ("gaussian", "bernoulli", "gaussian-learned")  # the last: chapter 9's learned c, constant kept
KL_VARIANTS = ("exact", "var-as-std", "var-as-logvar", "mean-over-dims", "mean-over-pixels")  # "exact": the ELBO's


def check_c(c: object) -> float:
    """``c`` as a float if it is a finite number > 0, else a :class:`ConfigError`."""
    return positive(c, "decoder variance c")


def _batches(a: object, b: object, names: tuple[str, str]) -> None:
    """A :class:`ConfigError` unless ``a`` and ``b`` are finite float tensors ``[N, ...]`` of one shape."""
    for value, name in zip((a, b), names):
        dims = value.dim() if isinstance(value, torch.Tensor) else 1
        tensor(value, name, (None,) * max(dims, 1), float32=False)
    if a.shape != b.shape:  # type: ignore[attr-defined]
        raise ConfigError(f"{names[0]} and {names[1]} differ in shape: {list(a.shape)} vs {list(b.shape)}")  # type: ignore[attr-defined]


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, c: float) -> torch.Tensor:
    """``||x - x_hat||^2 / (2c)`` summed over pixels, averaged over the batch."""
    check_c(c)
    _batches(x, x_hat, ("images", "reconstructions"))
    return _gaussian(x, x_hat, c)


def _gaussian(x: torch.Tensor, x_hat: torch.Tensor, c: float) -> torch.Tensor:
    return (x - x_hat).pow(2).flatten(1).sum(1).mean() / (2.0 * c)


def learned_gaussian_loss(x: torch.Tensor, x_hat: torch.Tensor, log_c: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` in nats of a decoder N(x_hat, cI) with learned ``log c``, batch-averaged (chapter 9)."""
    _batches(x, x_hat, ("images", "reconstructions"))
    tensor(log_c, "log c", (), float32=False)
    return _learned_gaussian(x, x_hat, log_c)


def _learned_gaussian(x: torch.Tensor, x_hat: torch.Tensor, log_c: torch.Tensor) -> torch.Tensor:
    d = x[0].numel()
    squared = (x - x_hat).pow(2).flatten(1).sum(1).mean()
    return squared / (2.0 * log_c.exp()) + 0.5 * d * (math.log(2.0 * math.pi) + log_c)


def kl_divergence(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(mean, diag(var)) || N(0, I)), summed over dimensions, batch-averaged (chapter 4)."""
    return kl_per_dimension(mean, var).sum(1).mean()


def kl_per_dimension(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """The KL of each latent dimension, ``[batch, z]`` (chapter 8 counts the active ones)."""
    _batches(mean, var, ("mean", "variance"))
    if not bool((var > 0).all()):
        raise ConfigError("every variance must be > 0 (the KL needs log var)")
    return _kl_dims(mean, var)


def _kl_dims(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return 0.5 * (var + mean.pow(2) - 1.0 - var.log())


def bernoulli_reconstruction_loss(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` of a Bernoulli decoder for 0/1 pixels in nats, averaged over the batch (chapter 5)."""
    _batches(x, logits, ("images", "logits"))
    return _bernoulli(x, logits)


def _bernoulli(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return (
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), x, reduction="none")
        .flatten(1)
        .sum(1)
        .mean()
    )


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each pixel set to 1 with probability equal to its intensity ("dynamic binarisation")."""
    return torch.bernoulli(check_pixels(images), generator=generator)


def check_kl_variant(variant: object) -> str:
    """``variant`` if it names one of :data:`KL_VARIANTS`, else a :class:`ConfigError`."""
    return one_of(variant, KL_VARIANTS, "KL variant")


def check_likelihood(likelihood: object) -> str:
    """``likelihood`` if it names one of :data:`LIKELIHOODS`, else a :class:`ConfigError`."""
    return one_of(likelihood, LIKELIHOODS, "decoder likelihood")


def kl_term(mean: torch.Tensor, var: torch.Tensor, variant: str = "exact") -> torch.Tensor:
    """The batch-averaged KL term as ``variant`` computes it: the ELBO's ("exact") or a reading of the report's KL."""
    check_kl_variant(variant)
    kl_per_dimension(mean, var)  # the checks; the variants below transform a checked variance
    return _kl(mean, var, variant)


def _kl(mean: torch.Tensor, var: torch.Tensor, variant: str) -> torch.Tensor:
    if variant == "var-as-std":
        var = var.pow(2)
    elif variant == "var-as-logvar":
        var = var.exp()
    kl = _kl_dims(mean, var).sum(1).mean()
    if variant == "mean-over-dims":
        return kl / mean.shape[1]
    if variant == "mean-over-pixels":
        return kl / N_PIXELS
    return kl


def check_pixels(x: object, what: str = "images") -> torch.Tensor:
    """``x`` if it is a float tensor ``[N, ...]`` of values in [0, 1] (any float type)."""
    return images(x, what, shape=None, float32=False)


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


def vae_loss(
    x: torch.Tensor,
    logits: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor | None,
    c: float,
    *,
    likelihood: str = "gaussian",
    kl_variant: str = "exact",
    log_c: torch.Tensor | None = None,
) -> LossTerms:
    """Both terms for a batch (chapter 4): no KL for ``var=None`` (an autoencoder), ``c`` for "gaussian" only."""
    likelihood = check_likelihood(likelihood)
    check_kl_variant(kl_variant)
    check_pixels(x)
    _batches(x, logits, ("images", "logits"))
    if likelihood == "gaussian":
        check_c(c)
    if likelihood == "gaussian-learned":
        if log_c is None:
            raise ConfigError("a learned decoder variance needs the model's log_c (build it with learn_c=True)")
        tensor(log_c, "log c", (), float32=False)
    if var is not None:
        kl_per_dimension(mean, var)
    return step_terms(x, logits, mean, var, c, likelihood, kl_variant, log_c)


def step_terms(
    x: torch.Tensor,
    logits: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor | None,
    c: float,
    likelihood: str,
    kl_variant: str,
    log_c: torch.Tensor | None,
) -> LossTerms:
    """:func:`vae_loss` without its checks, for a training or evaluation step."""
    if likelihood == "bernoulli":
        recon = _bernoulli(x, logits)
    elif likelihood == "gaussian-learned":
        recon = _learned_gaussian(x, torch.sigmoid(logits.float()), log_c)  # type: ignore[arg-type]
    else:
        recon = _gaussian(x, torch.sigmoid(logits.float()), c)
    kl = _kl(mean, var, kl_variant) if var is not None else recon.new_zeros(())
    return LossTerms(recon, kl)
