"""Training and evaluating a VAE or autoencoder (chapter 5's loop), every random stream seeded, also across a resume.
Channels-last, fused Adam, kept memory and native bf16 make it faster, not different (Performance appendix)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import validation
from .errors import ConfigError, TrainingDiverged
from .losses import LossTerms, binarize, check_c, check_kl_variant, check_likelihood, step_terms
from .models import VAE, Autoencoder
from .validation import env_flag, one_of, positive, whole
from .validation import images as check_images
from .validation import seed as check_seed

ADVICE = "the training diverged: try a smaller learning rate or a larger c"
MONITOR_SIZE = 100  # the report monitors the loss on 100 random test images
PRECISIONS = ("fp32", "bf16", "auto")


def default_device() -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device``, the best available one for ``None``; a clear error if absent."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or mps") from None
    mps = getattr(torch.backends, "mps", None)
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available()}
    if not available.get(dev.type, False):
        raise ConfigError(f"device {device!r} is not available on this machine")
    return dev


def progress_enabled() -> bool:
    """Progress bars are on unless ``$VAE_TUT_PROGRESS`` is off (:func:`~vae_tut.validation.env_flag`)."""
    return env_flag("VAE_TUT_PROGRESS", True)


@dataclass
class FitResult:
    """What :func:`fit` returns: a row per epoch, the last epoch's training average, the test-set loss."""

    history: list[dict[str, float]]
    train: dict[str, float]
    test: dict[str, float]
    seconds: float


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no gradients inside; the model's previous mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def check_labels(model: nn.Module, labels: object, n: int) -> torch.Tensor | None:
    """``labels`` checked as ``n`` class indices for a conditional VAE (chapter 4); ``None`` for other models."""
    classes = getattr(model, "n_classes", 0)
    if not classes:
        if labels is not None:
            raise ConfigError("labels are for a conditional VAE only; this model takes images alone")
        return None
    if not isinstance(labels, torch.Tensor):
        raise ConfigError(f"a conditional VAE needs labels: an integer tensor [{n}] of class indices")
    return validation.labels(labels, n, classes=classes).long()


def forward(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> Any:
    """``model(x)``, or ``model(x, labels)`` for a conditional VAE."""
    return model(x) if labels is None else model(x, labels)


def average_loss(
    model: nn.Module,
    images: torch.Tensor,
    c: float,
    batch_size: int = 1000,
    *,
    likelihood: str = "gaussian",
    kl_variant: str = "exact",
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Mean reconstruction, KL and total loss over ``images`` in eval mode (one z sample each)."""
    check_images(images)
    whole(batch_size, "batch size", 1, MAX_BATCH)
    check_labels(model, labels, len(images))
    return _average_loss(
        model, images, c, batch_size, check_likelihood(likelihood), check_kl_variant(kl_variant), labels
    )


def _average_loss(
    model: nn.Module,
    images: torch.Tensor,
    c: float,
    batch_size: int,
    likelihood: str,
    kl_variant: str,
    labels: torch.Tensor | None,
) -> dict[str, float]:
    device = next(model.parameters()).device
    recon = kl = 0.0
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            out = forward(model, x, None if labels is None else labels[start : start + batch_size].to(device))
            terms = step_terms(
                x, out.logits, out.mean, out.var, c, likelihood, kl_variant, getattr(model, "log_c", None)
            )
            recon += float(terms.recon) * len(x)
            kl += float(terms.kl) * len(x)
    n = len(images)
    return {"recon": recon / n, "kl": kl / n, "total": (recon + kl) / n}


def check_precision(precision: object) -> str:
    """``precision`` if it is ``fp32``, ``bf16`` or ``auto``, else a :class:`ConfigError`."""
    return one_of(precision, PRECISIONS, "precision")


def native_bf16(device: torch.device | str | None = None) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: CUDA, or an AVX-512 CPU with AVX512_BF16 or AMX."""
    device = resolve_device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu" or torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    cpu = torch.cpu
    return bool(
        getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )


def resolve_precision(precision: str, device: torch.device | str | None = None) -> str:
    """``fp32`` or ``bf16``: ``auto`` becomes bf16 only where :func:`native_bf16` is true."""
    if check_precision(precision) == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for ``precision="bf16"``, else nothing (Performance appendix)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def has_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` has 2-d (transposed) convolutions, which run faster channels-last."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for the next batch; whether it took effect (Performance appendix)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 256 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam; its fused one-kernel form where the device has it (same update, less overhead)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20


def check_settings(c: object, lr: object, batch_size: object, epochs: object, seed: object) -> None:
    """A :class:`ConfigError` naming the first setting out of range (for :func:`fit` and ``RunConfig``)."""
    check_c(c)
    positive(lr, "learning rate")
    whole(batch_size, "batch size", 1, MAX_BATCH)
    whole(epochs, "epochs", 1, MAX_EPOCHS)
    check_seed(seed)


def sub_seed(seed: int, stream: str) -> int:
    """An independent seed for each random stream (``noise``, ``order``, ``monitor``, ...) of a run."""
    digest = hashlib.sha256(f"vae_tut/{check_seed(seed)}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: any torch generator takes it


RESUME_KEYS = ("model", "optimizer", "order_rng", "rng", "history", "seconds")


def _check_resume(resume: object, epochs: int) -> None:
    what = "resume must be a checkpoint that fit() passed to on_epoch_end"
    if not isinstance(resume, dict) or any(k not in resume for k in RESUME_KEYS):
        raise ConfigError(f"{what} (a dict with {', '.join(RESUME_KEYS)})")
    history = resume["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) and "epoch" in row for row in history):
        raise ConfigError(f"{what}: its history is not a list of epochs")
    if len(history) > epochs:
        raise ConfigError(f"the checkpoint has {len(history)} epochs, more than the {epochs} asked for")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_diverged(model: nn.Module, loss_sum: float, epoch: int) -> None:
    if not math.isfinite(loss_sum):
        raise TrainingDiverged(f"the loss became {loss_sum} in epoch {epoch}; {ADVICE}")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise TrainingDiverged(f"the weights became NaN or infinite in epoch {epoch}; {ADVICE}")


def _check_fit_input(
    model: object,
    train_images: object,
    test_images: object,
    labels: object,
    settings: tuple[object, ...],
    likelihood: object,
    kl_variant: object,
) -> tuple[str, str, tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Check :func:`fit`'s arguments once; the likelihood, KL variant and (train, test) labels."""
    if not isinstance(model, (VAE, Autoencoder)):
        raise ConfigError(f"fit trains a model of vae_tut.models.build_model, got {type(model).__name__}")
    check_settings(*settings)
    check_images(train_images, "training images")
    check_images(test_images, "test images")
    if labels is not None and (not isinstance(labels, tuple) or len(labels) != 2):
        raise ConfigError("labels must be a pair (train labels, test labels)")
    train_y, test_y = (None, None) if labels is None else labels
    train_y = check_labels(model, train_y, len(train_images))  # type: ignore[arg-type]
    test_y = check_labels(model, test_y, len(test_images))  # type: ignore[arg-type]
    likelihood, kl_variant = check_likelihood(likelihood), check_kl_variant(kl_variant)
    if (getattr(model, "log_c", None) is not None) != (likelihood == "gaussian-learned"):
        raise ConfigError(
            "a model with a learned decoder variance (learn_c=True) trains with likelihood='gaussian-learned', "
            "and only such a model"
        )
    return likelihood, kl_variant, (train_y, test_y)


def _restore(
    resume: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
    device: torch.device,
) -> tuple[list[dict[str, float]], float]:
    try:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"the checkpoint does not fit this model ({first[:200]})") from None
    order.set_state(resume["order_rng"])
    _set_rng_state(resume["rng"], device)
    return list(resume["history"]), float(resume["seconds"])


def _epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_x: torch.Tensor,
    train_y: torch.Tensor | None,
    perm: torch.Tensor,
    batch_size: int,
    c: float,
    likelihood: str,
    kl_variant: str,
    precision: str,
    bar: Any,
) -> tuple[torch.Tensor, LossTerms]:
    """One unchecked epoch (chapter 5's loop): the summed recon and KL terms and the last batch's terms."""
    device, log_c = train_x.device, getattr(model, "log_c", None)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for start in range(0, len(perm), batch_size):
        idx = perm[start : start + batch_size]
        x = train_x[idx]
        if likelihood == "bernoulli":
            x = torch.bernoulli(x)
        with autocast(device, precision):
            out = forward(model, x, None if train_y is None else train_y[idx])
        terms = step_terms(x, out.logits, out.mean, out.var, c, likelihood, kl_variant, log_c)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        sums += torch.stack((terms.recon.detach(), terms.kl.detach())).double() * len(x)
        bar.update(1)
    return sums, terms


def fit(
    model: nn.Module,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    *,
    c: float,
    lr: float,
    batch_size: int,
    epochs: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    desc: str = "training",
    resume: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    precision: str = "fp32",
    likelihood: str = "gaussian",
    kl_variant: str = "exact",
    labels: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model`` with Adam (chapter 5); ``on_epoch_end`` gets a checkpoint each epoch that ``resume`` continues
    exactly, a NaN loss raises :class:`TrainingDiverged`, a conditional VAE takes ``labels=(train, test)``."""
    likelihood, kl_variant, (train_y, test_y) = _check_fit_input(
        model, train_images, test_images, labels, (c, lr, batch_size, epochs, seed), likelihood, kl_variant
    )
    if resume is not None:
        _check_resume(resume, epochs)
    if likelihood == "bernoulli":
        test_images = binarize(test_images, torch.Generator().manual_seed(sub_seed(seed, "test-binarisation")))
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    if device.type == "cpu":
        keep_freed_memory()
    progress = progress_enabled() if progress is None else progress
    model.to(device).train()
    train_x = train_images.to(device)
    if has_convolutions(model):
        model.to(memory_format=torch.channels_last)
        train_x = train_x.contiguous(memory_format=torch.channels_last)
    monitor_idx = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(sub_seed(seed, "monitor")))
    monitor_idx = monitor_idx[:MONITOR_SIZE]
    monitor_x = test_images[monitor_idx].to(device)
    monitor_y = None if test_y is None else test_y[monitor_idx].to(device)
    if train_y is not None:
        train_y = train_y.to(device)
    optimizer = make_optimizer(model, lr, device)
    order = torch.Generator().manual_seed(sub_seed(seed, "order"))
    history: list[dict[str, float]] = []
    seconds = 0.0
    if resume is not None:
        history, seconds = _restore(resume, model, optimizer, order, device)
    else:
        torch.manual_seed(sub_seed(seed, "noise"))
    n = len(train_x)
    n_batches = math.ceil(n / batch_size)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=epochs * n_batches,
        initial=len(history) * n_batches,
        desc=desc,
        unit="batch",
        disable=not progress,
        leave=False,
        mininterval=1.0,
    )
    try:
        for epoch in range(len(history) + 1, epochs + 1):
            started = time.perf_counter()
            perm = torch.randperm(n, generator=order).to(device)
            sums, terms = _epoch(
                model, optimizer, train_x, train_y, perm, batch_size, c, likelihood, kl_variant, precision, bar
            )
            recon_sum, kl_sum = sums.tolist()
            _check_diverged(model, recon_sum + kl_sum, epoch)
            monitor = _average_loss(model, monitor_x, c, 1000, likelihood, kl_variant, monitor_y)
            seconds += time.perf_counter() - started
            history.append(
                {
                    "epoch": epoch,
                    "train_recon": recon_sum / n,
                    "train_kl": kl_sum / n,
                    "train_total": (recon_sum + kl_sum) / n,
                    "test_recon": monitor["recon"],
                    "test_kl": monitor["kl"],
                    "test_total": monitor["total"],
                    "seconds": seconds,
                    "last_recon": terms.recon.item(),
                    "last_kl": terms.kl.item(),
                }
            )
            bar.set_postfix(epoch=epoch, loss=f"{history[-1]['train_total']:.1f}")
            if on_epoch_end is not None:
                on_epoch_end(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "order_rng": order.get_state(),
                        "rng": _rng_state(device),
                        "history": history,
                        "seconds": seconds,
                    }
                )
    finally:
        bar.close()
    last = history[-1]
    train = {"recon": last["train_recon"], "kl": last["train_kl"], "total": last["train_total"]}
    test = _average_loss(model, test_images, c, 1000, likelihood, kl_variant, test_y)
    return FitResult(history=history, train=train, test=test, seconds=seconds)
