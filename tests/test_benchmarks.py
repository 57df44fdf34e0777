"""The benchmark command (``python -m benchmarks.perf``) in its CI-sized mode.

Nothing here is timed: the tests check that every row is produced and that the
FLOP count the throughput row divides by is right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import perf
from vae_tut.losses import vae_loss
from vae_tut.models import build_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_flop_count_matches_torch_flop_counter(arch):
    model = build_model(arch, 2)
    ours = perf.training_flops_per_image(model)
    model.train()
    x = torch.rand(4, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        vae_loss(x, out.logits, out.mean, out.var, 0.05).total.backward()
    assert ours == counter.get_total_flops() / 4


def test_mlp_flop_count_by_hand():
    # 784-300-100-10-4 encoder and 2-10-100-300-784 decoder; multiply-adds per image:
    first = 784 * 300
    rest = 300 * 100 + 100 * 10 + 10 * 4 + 2 * 10 + 10 * 100 + 100 * 300 + 300 * 784
    # forward + weight gradient for the first layer, + input gradient for the others
    assert perf.training_flops_per_image(build_model("mlp", 2)) == 2 * (2 * first + 3 * rest)


def test_status_says_how_far_a_target_is_missed():
    assert perf._status(0.5, 0.4, True) == "met"
    assert perf._status(0.3, 0.4, True) == "short by 25%"
    assert perf._status(50.0, 40.0, False) == "short by 25%"


def test_ci_mode_produces_every_row(tmp_path):
    out = tmp_path / "results.json"
    env_cache = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.perf", "--ci", "--out", str(out),
         "--grid-cache", str(tmp_path / "grid")],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "VAE_TUT_CACHE": str(env_cache), "VAE_TUT_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "ci"
    assert set(results["rows"]) == set(perf.ROWS)
    rows = results["rows"]
    assert rows["loader"]["speedup"] > 0
    assert rows["throughput"]["fp32_peak_gflops"] > 0
    assert 0 < rows["throughput"]["cnn_bf16"]["peak_fraction"]
    assert set(rows["threads"]["cnn"]) == {"default", "OMP_WAIT_POLICY=PASSIVE", "1 thread"}
    assert set(rows["accuracy"]["runs"]) == {"mlp-mnist", "mlp-fashion-mnist", "cnn-mnist",
                                             "cnn-fashion-mnist"}
    for key in ("grid", "tests", "rebuild"):
        assert rows[key]["returncode"] == 0, rows[key]["output_tail"]
        assert rows[key]["peak_rss_mb"] > 0
    assert rows["grid"]["runs"] == 4
    # the printed table has one line per measurement, and says the targets do not apply
    table = proc.stdout
    assert table.count("\n| ") == len(perf.table_rows(results)) + 1
    for text in ("DataLoader", "fp32 peak", "PASSIVE", "cnn-fashion-mnist", "reproduction grid",
                 "test suite", "cached rebuild", "CI-sized"):
        assert text in table, text


def test_grid_row_refuses_a_cache_that_is_not_empty(tmp_path):
    (tmp_path / "some-run").mkdir()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.perf", "--rows", "grid",
                           "--grid-cache", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("times training from an empty cache")
