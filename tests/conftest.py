"""Shared fixtures. Tests run on one CPU thread so a busy 2-core machine cannot stall them."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty run cache; the data root stays the real one."""
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_TUT_PROGRESS", "0")
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
