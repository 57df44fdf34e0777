"""How good is a trained VAE? The ELBO and importance-weighted estimates of log p(x) (chapter 10).

The model is the book's: prior p(z) = N(0, I), decoder p(x|z) = N(f(z), cI) over
the D pixels *with* its normalising constant, and a diagonal Gaussian encoder
q(z|x) = N(mean, diag(var)). Drawing z_1 .. z_k from q(z|x), the k-sample
importance-weighted bound of Burda et al. (2016) is

    L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i | x)   <=   log p(x)   (in expectation),

with L_1 a one-sample ELBO estimate, E[L_k] growing with k and tending to
log p(x) as k -> infinity.

Sign conventions: every function here returns *log-likelihoods* in nats
per image (higher is better), one number per image. The losses of the
training loop are the opposite sign and leave out the constant
``(D/2) log(2 pi c)``. Because p(x|z) is a density over continuous pixel
values, log p(x) can be positive. The literature's bits per dimension are the
cost of 8-bit images: :func:`dequantize` and :func:`bits_per_dim_8bit` turn the
density into an upper bound on that cost, 8 bits for a uniform density.

The estimators only need two things from a model (the :class:`LatentModel`
protocol): ``encode(x) -> (mean, var)`` and a decoder mean f(z). For the
book's :class:`~vae_tut.models.VAE` that mean is ``sigmoid(decode(z))``; any
object with a ``decoder_mean(z)`` method (the tests use a linear-Gaussian
model whose log p(x) is known exactly) is used as it is.

Everything here is a function of a model and images alone: which trained runs
chapter 10 scores, and the cache of their estimates, are :mod:`vae_tut.likelihood`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

import torch

from . import validation
from .data import N_PIXELS
from .errors import ConfigError
from .losses import check_c, check_likelihood, gaussian_log_constant, kl_per_dimension
from .train import eval_mode, has_convolutions, keep_freed_memory
from .validation import IMAGE_SHAPE

MAX_VALUES = 2**28  # at most 1 GiB of float32 log weights or noise in one call
DEFAULT_MAX_DECODES = 500  # decoder evaluations per forward pass: ~0.2 GB for the CNN decoder
LOG_2PI = math.log(2.0 * math.pi)


class LatentModel(Protocol):
    """What the estimators need: a diagonal Gaussian encoder (and ``decode`` or ``decoder_mean``)."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


# ---------------------------------------------------------------- checks and plumbing


def check_k(k: object, name: str = "k") -> int:
    """``k`` if it is a whole number >= 1 (:func:`~vae_tut.validation.whole`)."""
    return validation.whole(k, name, 1)


def check_images(images: object) -> torch.Tensor:
    """What the estimators score (:func:`~vae_tut.validation.images`): any float ``[N, ...]``; images
    in the book's format must lie in [0, 1], other shapes (chapter 10's toy model scores points of
    the real line) may hold any finite value."""
    book = isinstance(images, torch.Tensor) and tuple(images.shape[1:]) == IMAGE_SHAPE
    return validation.images(images, shape=None, float32=False, unit=book)


def check_memory(n_values: int, what: str) -> None:
    """Raise :class:`ConfigError` if ``n_values`` numbers (4 bytes each) exceed :data:`MAX_VALUES`."""
    if n_values > MAX_VALUES:
        gib = n_values * 4 / 2**30
        limit = MAX_VALUES * 4 / 2**30
        raise ConfigError(f"{what} would need {gib:,.1f} GiB (over {limit:g}); use fewer images or a smaller k")


def decoder_mean(model: LatentModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """The decoder mean f(z): ``model.decoder_mean`` if it has one, else ``sigmoid(model.decode(z))``."""
    own = getattr(model, "decoder_mean", None)
    if callable(own):
        return own
    if not callable(getattr(model, "decode", None)):
        raise ConfigError("model needs decoder_mean(z) or decode(z) -> logits")
    return lambda z: torch.sigmoid(model.decode(z))  # type: ignore[attr-defined]


def model_device(model: object) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def _decoding(model: object) -> Iterator[None]:
    """:func:`~vae_tut.train.eval_mode` (for a model that has modes) and, for a convolutional model,
    the channels-last layout (faster decoding, same numbers); the previous layout is restored after."""
    module = model if isinstance(model, torch.nn.Module) else None
    relayout = (
        module is not None
        and has_convolutions(module)
        and not any(
            p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
            for p in module.parameters()
        )
    )
    with eval_mode(module) if module is not None else torch.no_grad():
        if relayout:
            module.to(memory_format=torch.channels_last)  # type: ignore[union-attr]
        try:
            yield
        finally:
            if relayout:
                module.to(memory_format=torch.contiguous_format)  # type: ignore[union-attr]


def _generator(generator: torch.Generator | None, seed: int) -> torch.Generator:
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(seed)


def _float_dtype(model: object, images: torch.Tensor) -> torch.dtype:
    """The model's parameter type; for a model without parameters float64 images stay float64."""
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.dtype
    return images.dtype if images.dtype == torch.float64 else torch.float32


class _Setup(NamedTuple):
    images: torch.Tensor
    batch_size: int
    decode: Callable[[torch.Tensor], torch.Tensor]
    log_lik: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    dtype: torch.dtype


def _setup(model: LatentModel, images: object, c: object, batch_size: object, likelihood: str = "gaussian") -> _Setup:
    """Check the common arguments and get ready for many decoder evaluations.

    ``decode(z)`` gives the decoder's output for codes ``[n, z]`` flattened to ``[n, D]``
    and ``log_lik(x, out)`` log p(x|z) in nats summed over the last axis: N(x; f(z), cI)
    with its constant, or for ``likelihood="bernoulli"`` (0/1 images, ``c`` unused) the
    Bernoulli log-probability of the decoder's logits. On the CPU the allocator keeps
    freed buffers (as in training, Performance appendix): only the speed changes.
    """
    images = check_images(images)
    c = check_c(c)
    device = model_device(model)
    if device.type == "cpu":
        keep_freed_memory()
    if check_likelihood(likelihood) == "bernoulli":
        if not callable(getattr(model, "decode", None)):
            raise ConfigError("a Bernoulli decoder needs decode(z) -> logits")
        if not bool(((images == 0) | (images == 1)).all()):
            raise ConfigError("a Bernoulli decoder scores 0/1 images; binarise them first (losses.binarize)")
        decode = model.decode  # type: ignore[attr-defined]

        def log_lik(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:  # out: the decoder's logits
            return (x * out - torch.nn.functional.softplus(out)).sum(-1)
    else:
        decode, log_const = decoder_mean(model), gaussian_log_constant(c, images[0].numel())

        def log_lik(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:  # out: the decoder mean f(z)
            return -(x - out).pow(2).sum(-1) / (2.0 * c) - log_const

    return _Setup(
        images,
        check_k(batch_size, "batch size"),
        lambda z: decode(z).flatten(1),
        log_lik,
        device,
        _float_dtype(model, images),
    )


def _chunks(total: int, size: int) -> Iterable[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(size, total - start)


# ---------------------------------------------------------------- the estimators


def log_importance_weights(
    model: LatentModel,
    images: torch.Tensor,
    c: float,
    k: int,
    *,
    batch_size: int = 100,
    max_decodes: int = DEFAULT_MAX_DECODES,
    generator: torch.Generator | None = None,
    seed: int = 0,
    likelihood: str = "gaussian",
) -> torch.Tensor:
    """``log p(x, z_i) - log q(z_i | x)`` for k samples z_i ~ q(z|x) per image: ``[N, k]`` (CPU).

    ``log p(x, z) = log N(x; f(z), cI) + log N(z; 0, I)`` with the decoder's
    full constant. Images go through in batches of ``batch_size``, the k samples
    in chunks so that at most ``max_decodes`` decoder evaluations run at once.
    Noise comes from ``generator`` (default: a fresh one seeded with ``seed``),
    so the same call gives the same numbers; they depend on ``batch_size`` but
    not on ``max_decodes``. ``likelihood="bernoulli"`` scores 0/1 images under a Bernoulli decoder.
    """
    return log_importance_weights_at(
        model,
        images,
        [images],
        c,
        k,
        batch_size=batch_size,
        max_decodes=max_decodes,
        generator=generator,
        seed=seed,
        likelihood=likelihood,
    )[0]


def log_importance_weights_at(
    model: LatentModel,
    images: torch.Tensor,
    targets: list[torch.Tensor],
    c: float,
    k: int,
    *,
    batch_size: int = 100,
    max_decodes: int = DEFAULT_MAX_DECODES,
    generator: torch.Generator | None = None,
    seed: int = 0,
    likelihood: str = "gaussian",
) -> list[torch.Tensor]:
    """Like :func:`log_importance_weights`, with the samples drawn from q(z|x) of ``images`` but
    ``p(t, z_i)`` scored for each tensor ``t`` of ``targets`` (same shape as ``images``).

    Any proposal gives a valid bound, so one set of decoder evaluations serves
    several targets: chapter 10 scores each test image and its dequantised copy
    (:func:`dequantize`) with the same samples.
    """
    k = check_k(k)
    max_decodes = check_k(max_decodes, "max decodes")
    images, batch_size, decode, log_lik, device, dtype = _setup(model, images, c, batch_size, likelihood)
    if not targets or any(not isinstance(t, torch.Tensor) or t.shape != images.shape for t in targets):
        raise ConfigError("targets must be tensors of the same shape as the images")
    check_memory(len(images) * k * len(targets), f"{len(targets)} x {len(images)} x k={k} log weights")
    gen = _generator(generator, seed)
    outs = [torch.empty(len(images), k, dtype=dtype) for _ in targets]
    with _decoding(model):
        for start, size in _chunks(len(images), batch_size):
            x = images[start : start + size].to(device, dtype)
            mean, var = model.encode(x)
            check_memory(size * k * mean.shape[1], f"{size} images x k={k} samples of z")
            std = var.sqrt()
            # log q(z|x) = -0.5 * sum(eps^2) - 0.5 * sum(log(2 pi var)) with z = mean + std * eps
            log_q_norm = -0.5 * (var.log() + LOG_2PI).sum(1, keepdim=True)  # [B, 1]
            flats = [t[start : start + size].to(device, dtype).flatten(1).unsqueeze(1) for t in targets]
            # all k draws at once (small: [B, k, z]), so the numbers do not depend on max_decodes
            eps_all = torch.randn(size, k, mean.shape[1], dtype=dtype, generator=gen).to(device)
            per_chunk = max(1, max_decodes // size)
            for s0, s in _chunks(k, per_chunk):
                eps = eps_all[:, s0 : s0 + s]  # [B, s, z]
                z = mean.unsqueeze(1) + std.unsqueeze(1) * eps
                fz = decode(z.reshape(size * s, -1)).reshape(size, s, -1)  # [B, s, D]
                log_pz = -0.5 * (z.pow(2).sum(2) + z.shape[2] * LOG_2PI)
                log_q = -0.5 * eps.pow(2).sum(2) + log_q_norm
                for out, t_flat in zip(outs, flats):
                    log_px_z = log_lik(t_flat, fz)
                    out[start : start + size, s0 : s0 + s] = (log_px_z + log_pz - log_q).cpu()
    return outs


def iwae_from_weights(log_w: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Per-image k-sample bounds from log weights ``[N, K]``: ``[N]``.

    With ``k=None`` (or ``k == K``) this is ``logsumexp(log_w) - log K``. With a
    smaller ``k`` dividing the K samples into ``K // k`` disjoint groups, each
    group gives one independent k-sample bound and their average is returned,
    an estimate of E[L_k] with less noise than a single group.
    """
    if not isinstance(log_w, torch.Tensor) or not log_w.is_floating_point() or log_w.dim() != 2 or 0 in log_w.shape:
        raise ConfigError("log weights must be a float tensor [N, K] with N, K >= 1")
    if bool(torch.isnan(log_w).any() | (log_w == math.inf).any()):
        raise ConfigError("log weights must be numbers or -inf (a zero weight), got NaN or +inf")
    total = log_w.shape[1]
    k = total if k is None else check_k(k)
    if k > total:
        raise ConfigError(f"k={k} is more than the {total} samples drawn")
    groups = total // k
    grouped = log_w[:, : groups * k].reshape(len(log_w), groups, k)
    return (torch.logsumexp(grouped, dim=2) - math.log(k)).mean(1)


def elbo_terms(
    model: LatentModel,
    images: torch.Tensor,
    c: float,
    samples: int = 1,
    *,
    batch_size: int = 100,
    max_decodes: int = DEFAULT_MAX_DECODES,
    generator: torch.Generator | None = None,
    seed: int = 0,
    likelihood: str = "gaussian",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two ELBO terms per image in nats: ``(E_q[log p(x|z)], KL(q(z|x) || p(z)))``, each ``[N]``.

    The expectation is a Monte Carlo average over ``samples`` draws of z and
    includes the constant ``-(D/2) log(2 pi c)``; the KL is the closed form.
    ``likelihood="bernoulli"`` scores 0/1 images under a Bernoulli decoder.
    """
    samples = check_k(samples, "samples")
    images, batch_size, decode, log_lik, device, dtype = _setup(model, images, c, batch_size, likelihood)
    gen = _generator(generator, seed)
    expected, kls = torch.empty(len(images), dtype=dtype), torch.empty(len(images), dtype=dtype)
    with _decoding(model):
        for start, size in _chunks(len(images), batch_size):
            x = images[start : start + size].to(device, dtype)
            mean, var = model.encode(x)
            x_flat = x.flatten(1).unsqueeze(1)
            total = torch.zeros(size, device=device, dtype=dtype)
            per_chunk = max(1, max_decodes // size)
            for _, s in _chunks(samples, per_chunk):
                eps = torch.randn(size, s, mean.shape[1], dtype=dtype, generator=gen).to(device)
                z = mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * eps
                fz = decode(z.reshape(size * s, -1)).reshape(size, s, -1)
                total += log_lik(x_flat, fz).sum(1)
            expected[start : start + size] = (total / samples).cpu()
            kls[start : start + size] = kl_per_dimension(mean, var).sum(1).cpu()
    return expected, kls


def elbo(model: LatentModel, images: torch.Tensor, c: float, samples: int = 1, **kwargs) -> torch.Tensor:
    """Per-image ELBO in nats with the decoder's constant, ``[N]``: expected log-likelihood minus KL.

    Same keyword arguments as :func:`elbo_terms`. Its negative, less the
    constant, is the loss the training loop minimises.
    """
    expected, kl = elbo_terms(model, images, c, samples, **kwargs)
    return expected - kl


# ---------------------------------------------------------------- units

LEVELS = 256  # an 8-bit pixel takes one of 256 values


def is_8bit(images: torch.Tensor) -> bool:
    """Whether every pixel is ``k / 255`` for a whole k from 0 to 255 (as MNIST's are)."""
    levels = torch.round(check_images(images) * (LEVELS - 1))
    return bool(((levels >= 0) & (levels < LEVELS)).all()) and torch.allclose(levels / (LEVELS - 1), images, atol=1e-6)


def dequantize(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """8-bit images ``k / 255`` spread uniformly over their cells: ``(k + u) / 256``, u ~ U[0, 1) (chapter 10).

    The cells of the 256 levels tile [0, 1), so a density p on pixel values gives
    the 8-bit image ``k`` the probability ``P(k) = 256^-D E_u[p((k + u) / 256)]``.
    """
    if not is_8bit(images):
        raise ConfigError("dequantize needs 8-bit images, pixel values k / 255 with whole k")
    levels = torch.round(images * (LEVELS - 1))
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return (levels + u) / LEVELS


def bits_per_dim_8bit(log_p_dequantized: torch.Tensor | float, n_dims: int = N_PIXELS) -> torch.Tensor | float:
    """Bits per dimension of 8-bit images from ``log p`` at their dequantised copies (:func:`dequantize`).

    Jensen's inequality over u gives ``log P(k) >= E_u[log p((k + u)/256)] - D ln 256``,
    so ``8 - log p / (D ln 2)`` is an upper bound on the 8-bit cost (lower is better);
    a uniform density on [0, 1]^D, log p = 0, costs exactly 8 bits per pixel.
    """
    check_k(n_dims, "number of dimensions")
    if isinstance(log_p_dequantized, torch.Tensor):
        validation.tensor(log_p_dequantized, "log p", (None,) * log_p_dequantized.dim(), float32=False)
    else:
        validation.finite(log_p_dequantized, "log p")
    return math.log2(LEVELS) - log_p_dequantized / (n_dims * math.log(2.0))


def independent_pixels_bits_per_dim(
    train_images: torch.Tensor, test_images: torch.Tensor, smoothing: float = 1.0
) -> float:
    """8-bit bits per dimension of the best model that treats pixels as independent (chapter 10).

    Each pixel gets its own distribution over the 256 levels, the frequencies on
    ``train_images`` with ``smoothing`` added to every count (so that a level never
    seen in training is not impossible); the cost is averaged over ``test_images``.
    Both sets must be 8-bit images (:func:`is_8bit`) of the same size.
    """
    smoothing = validation.positive(smoothing, "smoothing")
    for name, images in (("train_images", train_images), ("test_images", test_images)):
        if not is_8bit(images):
            raise ConfigError(f"{name} must be 8-bit images, pixel values k / 255 with whole k")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ConfigError(
            f"train_images and test_images must have the same image shape, got "
            f"{list(train_images.shape[1:])} and {list(test_images.shape[1:])}"
        )
    train = torch.round(train_images.flatten(1) * (LEVELS - 1)).long()
    test = torch.round(test_images.flatten(1) * (LEVELS - 1)).long()
    n, d = train.shape
    counts = torch.full((d, LEVELS), float(smoothing), dtype=torch.float64)
    counts.scatter_add_(1, train.T, torch.ones(d, n, dtype=torch.float64))
    log_p = (counts / counts.sum(1, keepdim=True)).log()  # [D, 256]
    per_image = log_p.gather(1, test.T).sum(0)  # [N_test]
    return float(-per_image.mean() / (d * math.log(2.0)))
