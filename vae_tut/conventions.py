"""One trained model, scored the way each popular VAE tutorial scores its own (chapter 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from .data import N_PIXELS
from .errors import ConfigError
from .losses import check_c, gaussian_log_constant, kl_per_dimension
from .models import VAE
from .train import eval_mode
from .validation import images as check_images

if TYPE_CHECKING:
    from .experiments import Run

BATCH = 128  # the batch size of pytorch/examples and of the Keras example
CONVERSIONS: list[tuple[str, str, str]] = [  # from one convention's number to another's, same model and images
    ("per image", f"summed over a batch of B ({BATCH} in pytorch/examples)", "multiply by B"),
    ("BCE averaged over pixels", "BCE summed over pixels", f"multiply by D = {N_PIXELS}"),
    ("the book's loss", "−ELBO in nats", "add (D/2) log(2πc)"),
    ("the book's reconstruction term", "summed squared error", "multiply by 2c"),
    ("an ELBO", "a loss", "change the sign"),
    ("one-sample KL", "closed-form KL", "none per batch; equal in expectation"),
    ("a Gaussian loss", "a Bernoulli (BCE) loss", "none: another likelihood, another number"),
]


class Row(NamedTuple):
    """One convention: a short key, its name, how it is computed, and its value for the model (chapter 5)."""

    key: str
    name: str
    formula: str
    value: float


def image_terms(
    model: VAE, images: torch.Tensor, c: float, *, seed: int = 0, batch_size: int = 1000
) -> dict[str, torch.Tensor]:
    """Per-image terms ``[N]`` with one seeded z ~ q(z|x) each (chapter 5): ``recon`` ||x - x̂||²/(2c), ``sq_err``,
    ``bce`` and ``bce_floor`` (x against itself) summed over pixels, the closed-form ``kl`` and one-sample ``kl_mc``."""
    check_c(c)
    check_images(images)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    parts = []
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            mean, var = (t.cpu() for t in model.encode(images[start : start + batch_size].to(device)))
            eps = torch.randn(mean.shape, generator=generator)
            z = mean + var.sqrt() * eps
            parts.append((mean, var, eps, z, model.decode(z.to(device)).float().cpu()))
    mean, var, eps, z, logits = (torch.cat(p) for p in zip(*parts))
    sq_err = (images - torch.sigmoid(logits)).pow(2).flatten(1).sum(1)
    return {
        "recon": sq_err / (2.0 * c),
        "sq_err": sq_err,
        "bce": F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1),
        "bce_floor": -(torch.xlogy(images, images) + torch.xlogy(1 - images, 1 - images)).flatten(1).sum(1),
        "kl": kl_per_dimension(mean, var).sum(1),
        # log q(z|x) - log p(z): the 2 pi terms cancel, (z - mean)^2 / var = eps^2
        "kl_mc": 0.5 * (z.pow(2) - eps.pow(2) - var.log()).sum(1),
    }


def kl_per_batch(
    model: VAE, images: torch.Tensor, *, batch_size: int = BATCH, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch means of the closed-form KL and of its one-sample estimate, one per full batch (chapter 5)."""
    terms = image_terms(model, images, 1.0, seed=seed)
    n = len(images) // batch_size * batch_size
    if n == 0:
        raise ConfigError(f"need at least one full batch of {batch_size} images, got {len(images)}")
    return (terms["kl"][:n].view(-1, batch_size).mean(1), terms["kl_mc"][:n].view(-1, batch_size).mean(1))


def conventions(model: VAE, images: torch.Tensor, c: float, *, seed: int = 0, batch_size: int = BATCH) -> list[Row]:
    """What each convention prints for one model on grey ``images``, per image unless named otherwise (chapter 5)."""
    grey = image_terms(model, images, c, seed=seed)
    binary = image_terms(model, (images > 0.5).float(), c, seed=seed)
    avg = {k: float(v.double().mean()) for k, v in grey.items()}
    report = avg["recon"] + avg["kl"]
    nelbo = report + gaussian_log_constant(c)
    bce_kl = avg["bce"] + avg["kl"]
    bce = "Σ_pixels BCE(x, x̂)"
    sample_kl = "log q(z∣x) − log p(z)"  # ∣ rather than |, which would split a Markdown table cell
    return [
        Row("report", "this book (the report's loss)", "‖x − x̂‖²/(2c) + KL, per image", report),
        Row("nelbo", "−ELBO in nats, Gaussian decoder", "the above + (D/2) log(2πc)", nelbo),
        Row("sq_err", "squared error without 1/(2c)", "‖x − x̂‖² + KL, per image", avg["sq_err"] + avg["kl"]),
        Row("bce", "BCE on grey pixels + KL (pytorch/examples, Keras)", f"{bce} + KL, per image", bce_kl),
        Row(
            "bce_batch",
            f"the same, summed over a batch of {batch_size}",
            f"per image × {batch_size}",
            bce_kl * batch_size,
        ),
        Row("bce_pixel", "BCE averaged over pixels (reduction='mean')", f"{bce} / {N_PIXELS}", avg["bce"] / N_PIXELS),
        Row("pyro", "BCE on grey pixels + one-sample KL (Pyro)", f"{bce} + {sample_kl}", avg["bce"] + avg["kl_mc"]),
        Row("floor", "lowest possible BCE on these grey pixels", "Σ_pixels BCE(x, x)", avg["bce_floor"]),
        Row(
            "tf",
            "ELBO on pixels thresholded at 0.5, one-sample KL (TensorFlow)",
            f"−(Σ_pixels BCE(b, b̂) + {sample_kl.replace('x', 'b')}), b = [x > 0.5]",
            -float((binary["bce"] + binary["kl_mc"]).double().mean()),
        ),
    ]


def convention_rows(run: Run, images: torch.Tensor, *, seed: int = 0) -> list[list[str]]:
    """Chapter 5's table rows (convention, formula, value) for a trained run on test ``images``."""
    rows = conventions(run.model, images, run.config.c, seed=seed)  # type: ignore[arg-type]  # a VAE run
    return [[r.name, r.formula, f"{r.value:,.1f}" if abs(r.value) >= 1 else f"{r.value:.3f}"] for r in rows]
