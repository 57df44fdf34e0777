"""A small digit (or garment) classifier that judges generated images by its verdict (chapters 3, 8 and 9)."""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import store, validation
from .data import DATASETS, load_dataset
from .experiments import QUICK_TRAIN_SIZE
from .validation import images as check_images

EPOCHS = 3
N_CLASSES = 10


def build_classifier() -> nn.Module:
    """Two stride-2 convolutions and a linear layer: 28 -> 14 -> 7, then 10 class logits."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(64 * 7 * 7, N_CLASSES),
    )


@dataclass(frozen=True)
class Classifier:
    """A trained classifier in eval mode, its data set and its accuracy on the 10,000 test images."""

    model: nn.Module
    dataset: str
    test_accuracy: float
    quick: bool


@dataclass(frozen=True)
class SampleQuality:
    """A verdict: mean top-class probability, entropy in bits of the mean class distribution (log2(10): all, 0: one)."""

    confidence: float
    entropy_bits: float
    class_shares: tuple[float, ...]

    @property
    def max_entropy_bits(self) -> float:
        return math.log2(N_CLASSES)


def _fit(dataset: str, quick: bool, seed: int = 0) -> tuple[nn.Module, float]:
    train_x, train_y = load_dataset(dataset, "train")
    test_x, test_y = load_dataset(dataset, "test")
    epochs = EPOCHS
    if quick:
        train_x, train_y = train_x[:QUICK_TRAIN_SIZE], train_y[:QUICK_TRAIN_SIZE]
    torch.manual_seed(seed)
    model = build_classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(train_x), generator=order)
        for start in range(0, len(train_x), 128):
            idx = perm[start : start + 128]
            loss = nn.functional.cross_entropy(model(train_x[idx]), train_y[idx].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(test_x[s : s + 1000]).argmax(1) for s in range(0, len(test_x), 1000)])
    return model, float((predicted == test_y.long()).float().mean())


def load_classifier(dataset: str = "mnist") -> Classifier:
    """The cached classifier of ``dataset``, trained on first use (a minute on a laptop CPU; quick: 2,048 images)."""
    from .experiments import cache_dir, quick_mode

    validation.one_of(dataset, DATASETS, "dataset")
    quick = quick_mode()
    digest = store.key_digest(
        {"dataset": dataset, "quick": quick, "epochs": EPOCHS, "code": CODE_VERSION, "torch": torch.__version__}
    )
    folder = cache_dir() / "classifier" / f"{dataset}-{digest}"

    def compute(_scratch: Path) -> tuple[Classifier, dict]:
        model, accuracy = _fit(dataset, quick)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        meta: dict[str, Any] = {"test_accuracy": accuracy, "quick": quick}
        meta["checksum"] = store.checksum(meta, buffer.getvalue())
        return Classifier(model, dataset, accuracy, quick), {"model.pt": buffer.getvalue(), "result.json": meta}

    def load(entry: Path) -> Classifier:
        advice = "delete it to train it again"
        meta, weights = store.read_entry(entry, "model.pt", ("test_accuracy", "quick"), "classifier entry", advice)
        model = store.load_weights(build_classifier(), weights, f"classifier entry {entry}", advice)
        return Classifier(model.eval(), dataset, float(meta["test_accuracy"]), bool(meta["quick"]))

    return store.cached(folder, compute, load)[0]


def class_probabilities(images: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """Softmax class probabilities ``[N, 10]`` of the cached classifier for images in [0, 1]."""
    check_images(images, "images to classify")
    validation.one_of(dataset, DATASETS, "dataset")
    model = load_classifier(dataset).model
    with torch.no_grad():
        images = images.detach().float().cpu()
        return torch.cat([model(images[s : s + 1000]).softmax(1) for s in range(0, len(images), 1000)])


def verdict(probs: torch.Tensor) -> SampleQuality:
    """Mean top-class probability and the entropy (bits) of the mean class distribution of ``probs``."""
    validation.tensor(probs, "class probabilities", (None, N_CLASSES), least=0.0)
    mean = probs.mean(0)
    entropy = -(mean * mean.clamp_min(1e-12).log2()).sum()
    return SampleQuality(float(probs.max(1).values.mean()), float(entropy), tuple(mean.tolist()))


def sample_quality(images: torch.Tensor, dataset: str = "mnist") -> SampleQuality:
    """The classifier verdict on ``images`` (any batch of [N, 1, 28, 28] images in [0, 1])."""
    return verdict(class_probabilities(images, dataset))


CODE_VERSION: str = store.code_version([sys.modules[__name__], load_dataset])
