"""How good is a trained VAE? ELBO and importance-weighted estimates of log p(x), in nats per image (chapter 10)."""

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


def check_k(k: object, name: str = "k") -> int:
    """``k`` if it is a whole number >= 1 (:func:`~vae_tut.validation.whole`)."""
    return validation.whole(k, name, 1)


def check_images(images: object) -> torch.Tensor:
    """Any finite float ``[N, ...]``; images in the book's shape must lie in [0, 1] (chapter 10)."""
    book = isinstance(images, torch.Tensor) and tuple(images.shape[1:]) == IMAGE_SHAPE
    return validation.images(images, shape=None, float32=False, unit=book)


def check_memory(n_values: int, what: str) -> None:
    """A :class:`ConfigError` if ``n_values`` numbers would exceed :data:`MAX_VALUES`."""
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
    """Eval mode and no gradients; a convolutional model channels-last until the block ends."""
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
    """Check the common arguments; ``decode(z)`` flattened to ``[n, D]`` and ``log_lik(x, out)``."""
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
    """``log p(x, z_i) - log q(z_i | x)`` for k samples z_i ~ q(z|x) per image, ``[N, k]`` on the CPU (chapter 10);
    ``max_decodes`` (decoder evaluations at once) does not change the numbers."""
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
    """:func:`log_importance_weights` with z_i ~ q(z|x) of ``images`` but ``p(t, z_i)`` for each of ``targets``."""
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
            log_q_norm = -0.5 * (var.log() + LOG_2PI).sum(1, keepdim=True)  # [B, 1]: log q(z|x) + sum(eps^2) / 2
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
    """Per-image k-sample bounds ``[N]`` from log weights ``[N, K]``, averaged over ``K // k`` groups (chapter 10)."""
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
    """Per-image ``E_q[log p(x|z)]`` over ``samples`` draws and closed-form ``KL(q(z|x) || p(z))`` (chapter 10)."""
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
    """Per-image ELBO in nats, ``[N]`` (keyword arguments as :func:`elbo_terms`)."""
    expected, kl = elbo_terms(model, images, c, samples, **kwargs)
    return expected - kl


LEVELS = 256  # an 8-bit pixel takes one of 256 values


def is_8bit(images: torch.Tensor) -> bool:
    """Whether every pixel is ``k / 255`` for a whole k from 0 to 255 (as MNIST's are)."""
    levels = torch.round(check_images(images) * (LEVELS - 1))
    return bool(((levels >= 0) & (levels < LEVELS)).all()) and torch.allclose(levels / (LEVELS - 1), images, atol=1e-6)


def dequantize(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """8-bit images ``k / 255`` spread uniformly over their cells: ``(k + u) / 256``, u ~ U[0, 1) (chapter 10)."""
    if not is_8bit(images):
        raise ConfigError("dequantize needs 8-bit images, pixel values k / 255 with whole k")
    levels = torch.round(images * (LEVELS - 1))
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return (levels + u) / LEVELS


def bits_per_dim_8bit(log_p_dequantized: torch.Tensor | float, n_dims: int = N_PIXELS) -> torch.Tensor | float:
    """Upper bound on 8-bit images' bits per dimension, ``8 - log p / (D ln 2)``, log p dequantised (chapter 10)."""
    check_k(n_dims, "number of dimensions")
    if isinstance(log_p_dequantized, torch.Tensor):
        validation.tensor(log_p_dequantized, "log p", (None,) * log_p_dequantized.dim(), float32=False)
    else:
        validation.finite(log_p_dequantized, "log p")
    return math.log2(LEVELS) - log_p_dequantized / (n_dims * math.log(2.0))


def independent_pixels_bits_per_dim(
    train_images: torch.Tensor, test_images: torch.Tensor, smoothing: float = 1.0
) -> float:
    """8-bit bits per dimension of independent pixels with level counts from ``train_images`` (chapter 10)."""
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
