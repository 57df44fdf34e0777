"""Shared fixtures. Tests run on one CPU thread so a busy 2-core machine cannot stall them."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import pytest
import torch

torch.set_num_threads(1)

TINY_TRAIN, TINY_TEST = 512, 128  # two batches of the default 256 per epoch; the test monitor's 100 fit


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty run cache; the data root stays the real one. The on/off
    variables the command line writes back (``1``/``0``) are restored after each test."""
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_TUT_RUNS_URL", "")  # never fetch published runs (tests/test_remote.py sets its own)
    monkeypatch.setenv("VAE_TUT_PROGRESS", "0")
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", os.environ.get("VAE_TUT_NO_DOWNLOAD", ""))
    monkeypatch.delenv("VAE_TUT_QUICK", raising=False)


@pytest.fixture(scope="session")
def real_data():
    """The real data root, checked; a clear failure (not a skip) if `python -m vae_tut data` was not run."""
    from vae_tut.data import DATASETS, check_dataset, data_root
    from vae_tut.errors import DataError

    try:
        for name in DATASETS:
            check_dataset(name)
    except DataError as err:
        pytest.fail(f"real data missing: {err}")
    return data_root()


def idx_bytes(array: torch.Tensor) -> bytes:
    """``array`` (uint8) as an IDX file: magic 0, 0, 0x08, number of dimensions; big-endian sizes; values."""
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.contiguous().numpy().tobytes()


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A synthetic data set of four small valid IDX files (512 training and 128 test images of
    seeded noise, labels 0-9 in turn) registered as ``mnist`` (``DATASETS['mnist']`` holds their
    sizes and SHA-256) and used as ``$VAE_TUT_DATA``, with no local package and no download
    to fall back on: the integrity checks run on kilobytes instead of the real 55 MB
    (as torchvision's tests inject fake data). Returns the root, the raw folder, the
    :class:`~vae_tut.data.DatasetInfo` and the expected tensors per split."""
    from vae_tut import data

    g = torch.Generator().manual_seed(0)
    arrays, expected = [], {}
    for split, n in (("train", TINY_TRAIN), ("test", TINY_TEST)):
        pixels = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        labels = (torch.arange(n) % 10).to(torch.uint8)
        arrays += [pixels, labels]
        expected[split] = (pixels.unsqueeze(1).float() / 255.0, labels.long())
    root = tmp_path / "tiny-data"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    files = []
    for real, array in zip(data.DATASETS["mnist"].files, arrays):
        blob = idx_bytes(array)
        (raw / real.name).write_bytes(blob)
        files.append(data.RawFile(real.name, len(blob), hashlib.sha256(blob).hexdigest()))
    info = data.DatasetInfo("mnist", "MNIST", data.DATASETS["mnist"].classes, tuple(files))
    monkeypatch.setitem(data.DATASETS, "mnist", info)
    monkeypatch.setenv("VAE_TUT_DATA", str(root))
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    return SimpleNamespace(root=root, raw=raw, info=info, expected=expected)
