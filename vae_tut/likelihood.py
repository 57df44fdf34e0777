"""Chapter 10's likelihood estimates of the book's trained runs, computed once and cached under a checked key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import evaluate, losses, store
from .data import load_dataset
from .errors import CacheError, ConfigError
from .evaluate import (
    LatentModel,
    bits_per_dim_8bit,
    dequantize,
    elbo_terms,
    is_8bit,
    iwae_from_weights,
    log_importance_weights_at,
)
from .experiments import BASE, BERNOULLI, LATENT, LEARNED_C, LIKELIHOOD, Run, RunConfig, cache_dir, quick_mode, run
from .train import resolve_device

LIKELIHOOD_MODELS: dict[str, RunConfig] = {  # chapter 10's runs: per data set MLP and CNN at z = 2, 10, learned c
    "mlp-mnist-z2": BASE["mlp-mnist"],
    "cnn-mnist-z2": BASE["cnn-mnist"],
    "mlp-mnist-z10": LATENT["mlp-mnist-z10"],
    "cnn-mnist-z10": LATENT["cnn-mnist-z10"],
    "mlp-mnist-learned-c": LEARNED_C["mlp-mnist-learned-c"],
    "mlp-fashion-z2": BASE["mlp-fashion-mnist"],
    "cnn-fashion-z2": BASE["cnn-fashion-mnist"],
    "mlp-fashion-z10": LIKELIHOOD["mlp-fashion-mnist-z10"],
    "cnn-fashion-z10": LIKELIHOOD["cnn-fashion-mnist-z10"],
    "mlp-fashion-learned-c": LEARNED_C["mlp-fashion-mnist-learned-c"],
}

BERNOULLI_MODELS: dict[str, RunConfig] = dict(BERNOULLI)  # chapter 5's, scored on binarised images
MAX_RESULT_BYTES = 1 << 20  # an estimate's result.json is about 1 kB


def decoder_c(trained: Run) -> float:
    """The decoder variance c a run is scored with: its learned ``exp(log_c)`` (chapter 9) or its config's c."""
    log_c = getattr(trained.model, "log_c", None)
    if log_c is not None:
        return float(torch.as_tensor(log_c).detach().double().exp())
    return float(trained.config.c)


def likelihood_settings() -> dict[str, Any]:
    """Chapter 10's settings: the first 1,000 test images and k up to 1,000 (quick mode: 100 and 100)."""
    quick = quick_mode()
    return dict(n_images=100 if quick else 1000, ks=(1, 10, 100, 1000)[: 3 if quick else 4], elbo_samples=10, seed=0)


def _check_ks(ks: Iterable[int]) -> list[int]:
    checked = sorted({evaluate.check_k(k) for k in ks})
    if not checked:
        raise ConfigError("ks must name at least one number of samples")
    return checked


def _scored_images(images: object, config: RunConfig, seed: int) -> torch.Tensor:
    images = evaluate.check_images(images)
    return losses.binarize(images, torch.Generator().manual_seed(seed)) if config.likelihood == "bernoulli" else images


def _entry(trained: Run, images: torch.Tensor, ks: list[int], elbo_samples: int, seed: int) -> tuple[Path, str]:
    """The cache folder of ``trained``'s estimates on scored ``images``, and its key."""
    if not getattr(trained, "checksum", ""):
        raise ConfigError("only a run of vae_tut.experiments.run (it has a checksum) is cached; pass cache=False")
    config = trained.config
    digest = store.key_digest(
        {
            "config": config.as_dict(),
            "weights": store.weights_checksum(trained.model),
            "ks": ks,
            "elbo_samples": elbo_samples,
            "seed": seed,
            "code": CODE_VERSION,
            "torch": torch.__version__,
            "device": evaluate.model_device(trained.model).type,
            "images": hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest(),
        }
    )
    return cache_dir() / "likelihood" / f"{config.arch}-{config.kind}-{config.dataset}-z{config.z}-{digest}", digest


@dataclass(frozen=True)
class Estimates:
    """:func:`evaluate_run`'s per-image means in nats (chapter 10): ``iwae`` and ``bits8`` (8-bit Gaussian only) map k
    to the k-sample bound; ``gap_se`` is the standard error of the largest-k bound's gap to the ELBO."""

    label: str
    c: float | None
    n_images: int
    seconds: float
    threads: int
    elbo: float
    expected_log_lik: float
    kl: float
    iwae: dict[int, float]
    gap_se: float
    bits8: dict[int, float] | None
    cached: bool = False

    def numbers(self) -> dict[str, Any]:
        """Everything but ``cached``, as the cache entry holds it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cached"}


def _numbers_checksum(result: dict[str, Any]) -> str:
    """SHA-256 of the numbers as ``result.json`` holds them (int keys as text)."""
    return store.checksum(json.loads(json.dumps(result)))


def evaluate_run(
    trained: Run,
    images: torch.Tensor,
    ks: Iterable[int] = (1, 10, 100, 1000),
    *,
    elbo_samples: int = 10,
    seed: int = 0,
    cache: bool = True,
) -> Estimates:
    """ELBO and importance-weighted estimates of a trained run, all k from the same ``max(ks)`` samples (chapter 10)."""
    ks = _check_ks(ks)
    config = trained.config
    images = _scored_images(images, config, seed)
    gaussian = config.likelihood != "bernoulli"
    c = decoder_c(trained)
    model: LatentModel = trained.model  # type: ignore[assignment]  # a VAE: encode(x) -> (mean, var)
    folder, key = _entry(trained, images, ks, elbo_samples, seed) if cache else (Path(), "")

    def compute(_scratch: Path) -> tuple[Estimates, dict]:
        expected, kl = elbo_terms(model, images, c, elbo_samples, seed=seed, likelihood=config.likelihood)
        start = time.perf_counter()
        eight_bit = gaussian and is_8bit(images)
        targets = [images, dequantize(images, seed + 2)] if eight_bit else [images]
        log_ws = log_importance_weights_at(
            model, images, targets, c, max(ks), seed=seed + 1, likelihood=config.likelihood
        )
        seconds = time.perf_counter() - start
        gap = iwae_from_weights(log_ws[0]) - (expected - kl)
        result = Estimates(
            label=config.label(),
            c=c if gaussian else None,
            n_images=len(images),
            seconds=seconds,
            threads=torch.get_num_threads(),
            elbo=float((expected - kl).mean()),
            expected_log_lik=float(expected.mean()),
            kl=float(kl.mean()),
            iwae={k: float(iwae_from_weights(log_ws[0], k).mean()) for k in ks},
            gap_se=float(gap.std() / math.sqrt(len(gap))) if len(gap) > 1 else float("nan"),
            bits8=None
            if len(log_ws) == 1
            else {k: float(bits_per_dim_8bit(iwae_from_weights(log_ws[1], k).mean(), images[0].numel())) for k in ks},
        )
        numbers = {**result.numbers(), "key": key}
        return result, {"result.json": {**numbers, "checksum": _numbers_checksum(numbers)}}

    def load(folder: Path) -> Estimates:
        advice = "delete it to compute it again"
        try:
            saved = json.loads(store.read_regular(folder / "result.json", MAX_RESULT_BYTES))
            checksum = saved.pop("checksum", None)
        except (OSError, ValueError, AttributeError, TypeError, CacheError):
            raise CacheError(f"likelihood entry {folder} is unreadable; {advice}") from None
        if checksum != _numbers_checksum(saved):
            raise CacheError(
                f"likelihood entry {folder}: its numbers do not match their checksum "
                f"(changed after they were computed); {advice}"
            )
        if saved.pop("key", None) != key:
            raise CacheError(f"likelihood entry {folder} holds the estimates of another model or setting; {advice}")
        try:
            saved["iwae"] = {int(k): v for k, v in saved["iwae"].items()}
            if saved["bits8"] is not None:
                saved["bits8"] = {int(k): v for k, v in saved["bits8"].items()}
            return Estimates(**saved, cached=True)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise CacheError(f"likelihood entry {folder} lacks its estimates; {advice}") from None

    if not cache:
        return compute(Path())[0]
    return store.cached(folder, compute, load)[0]


def _chapter_run(config: RunConfig, device: str | None) -> tuple[Run, torch.Tensor, dict[str, Any]]:
    """The cached run of ``config`` (on ``device``), the test images chapter 10 scores it on, the other settings."""
    settings = likelihood_settings()
    trained = run(config, device=device)
    if device is not None:  # the estimate runs where the model is
        trained.model.to(resolve_device(device))
    return trained, load_dataset(trained.config.dataset, "test")[0][: settings.pop("n_images")], settings


def estimate_likelihood(config: RunConfig, device: str | None = None) -> tuple[Run, Estimates]:
    """The cached run of ``config`` and its chapter-10 estimates (:func:`evaluate_run`), computed once."""
    trained, images, settings = _chapter_run(config, device)
    return trained, evaluate_run(trained, images, **settings)


def is_estimated(config: RunConfig, device: str | None = None) -> bool:
    """Whether :func:`estimate_likelihood` would only read the cache (``False`` while the run is untrained)."""
    dev = resolve_device(device)
    if not (cache_dir() / config.resolved(dev).key(dev)).is_dir():
        return False
    trained, images, settings = _chapter_run(config, device)
    images = _scored_images(images, trained.config, settings["seed"])
    return _entry(trained, images, _check_ks(settings["ks"]), settings["elbo_samples"], settings["seed"])[0].is_dir()


CODE_VERSION: str = store.code_version([evaluate, losses, evaluate_run, decoder_c])  # the estimators, hashed at import
