"""Named runs of the report's grid, trained once and cached under a hash of config and code (:func:`compute_path`)."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import data, losses, models, remote, store, train, validation
from .data import DATASETS, load_dataset
from .errors import CacheError, ConfigError
from .losses import KL_VARIANTS, check_c, check_kl_variant, check_likelihood
from .models import ARCHS, MLP_HIDDEN, build_model, check_latent_dim

DEFAULT_LR = {"mlp": 0.0025, "cnn": 0.0015}
# bf16 speeds the CNN up only where the hardware has bf16 units, the MLP hardly anywhere (Performance appendix).
DEFAULT_PRECISION = {"mlp": "fp32", "cnn": "auto"}
QUICK_EPOCHS = 1
QUICK_TRAIN_SIZE = 2048
QUICK_TEST_SIZE = 1000  # a quick run is scored on the first 1,000 test images: a smoke test, not a result


def quick_mode() -> bool:
    """Whether ``$VAE_TUT_QUICK`` is on (:func:`~vae_tut.validation.env_flag`)."""
    return validation.env_flag("VAE_TUT_QUICK", False)


@dataclass(frozen=True)
class RunConfig:
    """Everything that fixes a run's numbers; ``lr`` and ``precision`` default by ``arch``, ``train_size`` (the first N
    images) is quick mode's, ``kl_variant`` and ``hidden`` (the MLP's third width) the reproduction appendix's."""

    arch: str = "mlp"
    dataset: str = "mnist"
    z: int = 2
    c: float = 0.05
    lr: float | None = None
    batch_size: int = 256
    epochs: int = 15
    seed: int = 0
    kind: str = "vae"
    train_size: int | None = None
    precision: str | None = None
    likelihood: str = "gaussian"
    kl_variant: str = "exact"
    hidden: int = MLP_HIDDEN

    def __post_init__(self) -> None:
        validation.one_of(self.dataset, DATASETS, "dataset")
        check_latent_dim(self.z)
        object.__setattr__(self, "c", check_c(self.c))  # stored as a float
        models.check_combination(
            self.arch, self.kind, self.hidden, check_likelihood(self.likelihood), check_kl_variant(self.kl_variant)
        )
        lr = DEFAULT_LR[self.arch] if self.lr is None else self.lr
        train.check_settings(self.c, lr, self.batch_size, self.epochs, self.seed)
        object.__setattr__(self, "lr", float(lr))
        precision = DEFAULT_PRECISION[self.arch] if self.precision is None else self.precision
        object.__setattr__(self, "precision", train.check_precision(precision))
        if self.train_size is not None:
            validation.whole(self.train_size, "train size", 1, data.TRAIN_SIZE)

    @property
    def is_quick(self) -> bool:
        """Whether this run was shrunk for tests (fewer epochs or images than the report)."""
        return self.train_size is not None

    def quick(self) -> RunConfig:
        """The quick-mode version: one epoch on the first 2,048 training images (a smoke test)."""
        return dataclasses.replace(self, epochs=min(self.epochs, QUICK_EPOCHS), train_size=QUICK_TRAIN_SIZE)

    def resolved(self, device: torch.device | str | None = None) -> RunConfig:
        """The config that will run: shrunk in quick mode, precision ``auto`` as ``fp32`` or ``bf16`` for ``device``."""
        config = self.quick() if quick_mode() and not self.is_quick else self
        precision = train.resolve_precision(config.precision or DEFAULT_PRECISION[config.arch], device)
        return dataclasses.replace(config, precision=precision)

    def label(self) -> str:
        """A short human name, e.g. ``MLP VAE, mnist, z=2, c=0.05, fp32`` (+ ``[QUICK MODE]``)."""
        text = f"{self.arch.upper()} {self.kind.upper()}, {self.dataset}, z={self.z}"
        if self.likelihood != "gaussian":
            text += ", Bernoulli decoder" if self.likelihood == "bernoulli" else ", learned c"
        elif self.kind != "ae":
            text += f", c={self.c:g}"
        if self.kl_variant != "exact":
            text += f", KL {self.kl_variant}"
        if self.hidden != MLP_HIDDEN:
            text += f", hidden {self.hidden}"
        return text + f", {self.precision}" + (" [QUICK MODE]" if self.is_quick else "")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (what a cache entry records)."""
        return dataclasses.asdict(self)

    def key(self, device: torch.device | str | None = None) -> str:
        """Cache folder name: a readable prefix and the hash of :func:`run_key` for ``device`` (``None``: the best)."""
        digest = store.key_digest(run_key(self.as_dict(), train.resolve_device(device).type))
        return f"{self.arch}-{self.kind}-{self.dataset}-z{self.z}-{digest}"


def run_key(config: dict[str, Any], device: str) -> dict[str, Any]:
    """What a run's numbers depend on: its settings, code (:data:`CODE_VERSION`), the constants that code reads but
    does not hold, the torch version and the kind of ``device`` (CUDA draws other random numbers than the CPU)."""
    table = {
        "files": {name: [dataclasses.astuple(f) for f in info.files] for name, info in DATASETS.items()},
        "image_shape": list(validation.IMAGE_SHAPE),
        "train_size": data.TRAIN_SIZE,
        "quick": [QUICK_EPOCHS, QUICK_TRAIN_SIZE, QUICK_TEST_SIZE],
    }
    return {"config": config, "code": CODE_VERSION, "data": table, "torch": torch.__version__, "device": device}


def compute_path() -> tuple[object, ...]:
    """What computes a run's numbers: data loading, the networks, the loss, the training loop and :func:`_train`."""
    return (data.load_dataset, data.verified_bytes, data.read_idx, models, losses, train, _train)


def code_version() -> str:
    """Hash of :func:`compute_path`'s code without docstrings and comments, taken at import."""
    return CODE_VERSION


BASE = {f"{arch}-{ds}": RunConfig(arch=arch, dataset=ds) for arch in ARCHS for ds in DATASETS}
LATENT_SIZES = (1, 2, 3, 5, 10, 20)
LATENT = {f"{arch}-mnist-z{z}": RunConfig(arch=arch, z=z) for arch in ARCHS for z in LATENT_SIZES}
C_VALUES = (0.0001, 0.001, 0.01, 0.05, 1.0)
C_GRID = {f"mlp-mnist-c{c:g}": RunConfig(c=c) for c in C_VALUES}
AE_BASELINE = RunConfig(kind="ae")
# Chapter 10 also measures a larger latent size on Fashion-MNIST (MNIST's is in LATENT).
LIKELIHOOD = {f"{arch}-fashion-mnist-z10": RunConfig(arch=arch, dataset="fashion-mnist", z=10) for arch in ARCHS}
SEEDS = (0, 1, 2, 3, 4)
SEED_GRID = {f"mlp-mnist-seed{s}": RunConfig(seed=s) for s in SEEDS}
# Chapter 8 repeats the two largest latent sizes with two more seeds, so each verdict has a spread.
LATENT_SEEDS = {
    f"{arch}-mnist-z{z}-seed{s}": RunConfig(arch=arch, z=z, seed=s) for arch in ARCHS for z in (10, 20) for s in (1, 2)
}
# The reproduction appendix's explanations of the report's KL of 14 (ours is about 8): one change each to the base run.
REPORT_CANDIDATES: dict[str, dict[str, Any]] = {
    "c0.01": {"c": 0.01},
    "c0.025": {"c": 0.025},
    **{f"kl-{v}": {"kl_variant": v} for v in KL_VARIANTS if v != "exact"},
    "hidden20": {"hidden": 20},
}
REPORT_KL = {
    f"mlp-{ds}-{name}": dataclasses.replace(BASE[f"mlp-{ds}"], **change)
    for ds in DATASETS
    for name, change in REPORT_CANDIDATES.items()
}
# Chapter 5's Bernoulli section: the report's MLP with a Bernoulli decoder on dynamically binarised MNIST.
BERNOULLI = {f"mlp-mnist-bernoulli-z{z}": RunConfig(z=z, likelihood="bernoulli") for z in (2, 20)}
# Chapter 4's exercise: the report's MLP, conditioned on the digit's label.
CVAE = RunConfig(kind="cvae")
# Chapters 9 and 10: the report's MLP with its decoder variance c learned (sigma-VAE).
LEARNED_C = {f"mlp-{ds}-learned-c": RunConfig(dataset=ds, likelihood="gaussian-learned") for ds in DATASETS}
# Chapter 5's translation of other tutorials' losses: MSE summed over pixels plus the summed KL
# is c = 0.5; torch's default F.mse_loss (a mean over the D pixels) plus the summed KL is c = D/2.
MSE_CONVENTIONS = {"mse-sum": 0.5, "mse-mean": data.N_PIXELS / 2}
TUTORIAL_LOSSES = {f"mlp-mnist-{name}": RunConfig(c=c) for name, c in MSE_CONVENTIONS.items()}
GRIDS = {
    "base": BASE,
    "latent": LATENT,
    "latent-seeds": LATENT_SEEDS,
    "c": C_GRID,
    "ae": {"mlp-mnist-ae": AE_BASELINE},
    "seeds": SEED_GRID,
    "likelihood": LIKELIHOOD,
    "report-kl": REPORT_KL,
    "bernoulli": BERNOULLI,
    "cvae": {"mlp-mnist-cvae": CVAE},
    "learned-c": LEARNED_C,
    "tutorial-losses": TUTORIAL_LOSSES,
}

# Final training losses quoted in the reference report (section 3.3 and 4.1).
REPORT = {
    "mlp-mnist": {"total": 307.0, "recon": 293.0, "kl": 14.0},
    "mlp-fashion-mnist": {"total": 229.0, "recon": 216.0, "kl": 13.4},
    "cnn-mnist": {"total": 322.0},
    "cnn-fashion-mnist": {"total": 246.0},
}


def grid(names: str | None = None) -> dict[str, RunConfig]:
    """The named configs of one grid (a key of :data:`GRIDS`) or, with ``None``, all (names may share a config)."""
    if names is None:
        return {name: config for g in GRIDS.values() for name, config in g.items()}
    return dict(GRIDS[validation.one_of(names, GRIDS, "grid")])


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Run cache: ``path``, else ``$VAE_TUT_CACHE``, else the user cache folder (:func:`vae_tut.store.root`)."""
    return store.root("runs", path)


@dataclass
class Run:
    """A finished run (chapter 2): its config, model in eval mode, history, metrics and ``origin`` in this call
    (``trained``, ``cached`` or ``fetched`` from the published runs)."""

    config: RunConfig
    model: nn.Module
    history: list[dict[str, float]]
    train: dict[str, float]
    test: dict[str, float]
    seconds: float
    from_cache: bool
    checksum: str = ""  # SHA-256 of the entry's weights and numbers: keys what is computed from this run
    origin: str = ""  # "trained", "cached" or "fetched"; empty: from from_cache

    def __post_init__(self) -> None:
        if not self.origin:
            self.origin = "cached" if self.from_cache else "trained"

    def summary(self) -> dict[str, Any]:
        """Final train/test numbers, seconds and the quick flag, for tables and ``--json``."""
        numbers = {"train": self.train, "test": self.test, "seconds": self.seconds, "cached": self.from_cache}
        return {"run": self.config.label(), "quick": self.config.is_quick, "precision": self.config.precision} | numbers


METRICS = ("history", "train", "test", "seconds")


def _checksum(meta: dict[str, Any], weights: bytes) -> str:
    return store.checksum({k: meta[k] for k in METRICS}, weights)


def _load_entry(entry: Path, config: RunConfig, device_type: str) -> Run:
    """Read a finished cache entry, checking it is intact and was made for ``config`` by this code."""
    advice = "delete it or train again with retrain=True (--retrain)"
    meta, weights = store.read_entry(entry, "model.pt", METRICS, "cache entry", advice)
    if meta.get("config") != config.as_dict() or meta.get("code_version") != code_version():
        raise CacheError(f"cache entry {entry} holds a run of another config or code version; {advice}")
    model = build_model(config.arch, config.z, config.kind, config.hidden, config.likelihood == "gaussian-learned")
    store.load_weights(model, weights, f"cache entry {entry}", advice).eval()
    made_with = f"torch {meta.get('torch')} on {meta.get('device')}"
    here = f"torch {torch.__version__} on {device_type}"
    if made_with != here:
        store.note(f"note: {config.label()} was trained with {made_with}; this is {here}")
    return Run(config, model, meta["history"], meta["train"], meta["test"], meta["seconds"], True, meta["checksum"])


def _train(
    config: RunConfig,
    scratch: Path,
    device: torch.device,
    progress: bool | None,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> tuple[Run, dict[str, Any]]:
    """Train ``config`` (resuming from ``scratch/state.pt`` if there); the run and its entry's files."""
    resume = None
    if (scratch / "state.pt").exists():
        try:
            resume = torch.load(scratch / "state.pt", map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is only lost time
            resume = None

    def checkpoint(state: dict[str, Any]) -> None:
        store.write_atomic_dir(scratch, {"state.pt": state})
        if on_epoch is not None:
            on_epoch(state["history"][-1])

    train_x, train_y = load_dataset(config.dataset, "train")
    test_x, test_y = load_dataset(config.dataset, "test")
    if config.train_size is not None:  # quick mode: a smaller training set and test pass
        train_x, train_y = train_x[: config.train_size], train_y[: config.train_size]
        test_x, test_y = test_x[:QUICK_TEST_SIZE], test_y[:QUICK_TEST_SIZE]
    torch.manual_seed(train.sub_seed(config.seed, "init"))
    model = build_model(
        config.arch, config.z, config.kind, config.hidden, learn_c=config.likelihood == "gaussian-learned"
    )
    result = train.fit(
        model,
        train_x,
        test_x,
        c=config.c,
        lr=config.lr,  # type: ignore[arg-type]  # resolved to a float by RunConfig
        batch_size=config.batch_size,
        epochs=config.epochs,
        seed=config.seed,
        device=device,
        progress=progress,
        desc=config.label(),
        resume=resume,
        on_epoch_end=checkpoint,
        precision=config.precision,  # type: ignore[arg-type]  # resolved by RunConfig
        likelihood=config.likelihood,
        kl_variant=config.kl_variant,
        labels=(train_y, test_y) if config.kind == "cvae" else None,
    )
    model.to("cpu", memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    meta = {
        "config": config.as_dict(),
        "code_version": code_version(),
        "history": result.history,
        "train": result.train,
        "test": result.test,
        "seconds": result.seconds,
        "torch": torch.__version__,
        "device": device.type,
    }
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    meta["checksum"] = _checksum(meta, buffer.getvalue())
    run_ = Run(config, model, result.history, result.train, result.test, result.seconds, False, meta["checksum"])  # type: ignore[arg-type]
    return run_, {"model.pt": buffer.getvalue(), "result.json": meta}


def run(
    config: RunConfig,
    *,
    cache: str | os.PathLike | None = None,
    retrain: bool = False,
    progress: bool | None = None,
    device: str | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Run:
    """``config``'s run (:meth:`RunConfig.resolved`) from the cache, else fetched (:mod:`vae_tut.remote`) or trained
    (resuming from its last finished epoch) and cached; ``on_epoch`` gets each epoch's history row (chapter 2)."""
    if not isinstance(config, RunConfig):
        shown = f" {config!r:.60}" if isinstance(config, (str, int, float)) else ""
        raise ConfigError(
            "config must be a RunConfig (e.g. RunConfig(arch='mlp') or grid()['mlp-mnist']), "
            f"got a {type(config).__name__}{shown}"
        )
    dev = train.resolve_device(device)
    config = config.resolved(dev)
    folder = cache_dir(cache) / config.key(dev)
    value, _ = store.cached(
        folder,
        lambda scratch: _train(config, scratch, dev, progress, on_epoch),
        lambda entry: _load_entry(entry, config, dev.type),
        refresh=retrain,
    )
    if remote.take_fetched(folder):
        value.origin = "fetched"
    return value


CODE_VERSION: str = store.code_version(compute_path())
