"""The benchmark command (``python -m benchmarks.perf``) in its CI-sized mode.

Nothing here is timed: the tests check that every row is produced and rendered,
and that the FLOP count the throughput row divides by is right. The rows that
build a book or run the test suite are not run from a test (CI runs them as a
step of their own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import measure, report
from benchmarks.rows import ROWS

ROOT = Path(__file__).resolve().parent.parent
IN_TESTS = [r for r in ROWS if r not in ("book", "tests", "book_fetched")]


def test_mlp_flop_count_by_hand():
    from vae_tut.parallel import network_flops

    # 784-300-100-10-4 encoder and 2-10-100-300-784 decoder; multiply-adds per image:
    first = 784 * 300
    rest = 300 * 100 + 100 * 10 + 10 * 4 + 2 * 10 + 10 * 100 + 100 * 300 + 300 * 784
    # forward + weight gradient for the first layer, + input gradient for the others
    assert network_flops("mlp", 2)[0] == 2 * (2 * first + 3 * rest)
    assert network_flops("cnn", 2)[0] > network_flops("mlp", 2)[0]


def test_one_results_file_per_cpu_kind():
    for cpu, flags, forced, slug in [
        ("AMD EPYC 7B13 64-Core Processor", ["avx2"], None, "amd-epyc-7b13-avx2"),
        ("Intel(R) Xeon(R) Processor", ["avx2", "avx512f", "avx512_bf16", "amx_bf16"], None,
         "intel-xeon-avx2-avx512f-avx512bf16-amxbf16"),
        ("Intel(R) Xeon(R) Processor", ["avx2", "avx512f"], "avx2", "intel-xeon-avx2-avx512f-kernels-avx2"),
    ]:
        assert measure.kind_slug({"cpu": cpu, "flags": flags, "kernels_forced": forced}) == slug


def test_peak_memory_is_each_childs_own():
    big = [sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"]
    small = [sys.executable, "-c", "pass"]
    assert measure.run_measured(big)["peak_rss_mb"] > 300
    assert measure.run_measured(small)["peak_rss_mb"] < 100


def test_ci_mode_produces_every_row(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.perf", "--ci", "--out", str(out), "--rows", *IN_TESTS],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "VAE_TUT_CACHE": str(tmp_path / "runs"), "VAE_TUT_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "ci" and set(results["rows"]) == set(IN_TESTS)
    assert results["machine"]["flags"] == [f for f in measure.FLAGS if f in results["machine"]["flags"]]
    rows = results["rows"]
    _derived_numbers_agree(rows)
    x = rows["throughput"]
    assert x["default_precision"]["mlp"] == "fp32"
    assert x["default_precision"]["cnn"] == ("bf16" if x["native_bf16"] else "fp32")
    assert ("cnn_bf16" in x) == x["native_bf16"]
    assert "mlp" in rows["threads"] and "cnn" not in rows["threads"]  # the CI mode times the MLP only
    assert set(rows["threads"]["mlp"]) == {"default", "OMP_WAIT_POLICY=PASSIVE", "1 thread"}
    assert len(rows["parallel"]["mlp"]["workers_s"]) == rows["parallel"]["cores"]
    if x["native_bf16"]:
        assert set(rows["accuracy"]["runs"]) == {"mlp-mnist"}  # the CI mode's one run
    else:
        assert "skipped" in rows["accuracy"]
    options = rows["cnn_options"]
    assert options["fold_max_abs_diff"] < 1e-4 and "compiled_step_ms" not in options
    assert set(rows["elu"]["kernel_ms"]) == {"exp", "expm1", "elu", "exp-based elu"}
    assert set(rows["elu"]) >= {"cnn_fp32", "cnn_bf16", "mlp_fp32"} and rows["elu"]["max_abs_difference"] < 1e-6
    for arch in ("mlp", "cnn"):
        checks = rows["step_checks"][arch]
        assert checks["speedup"] == pytest.approx(checks["step_ms"]["checked"] / checks["step_ms"]["unchecked"])
    # the printed table has one line per measurement that was made
    table = proc.stdout
    for text in ("DataLoader", "fp32 / bf16", "PASSIVE", "single-thread process per core",
                 "importance sampling", "share of the fp32 peak", "BN-folded", "exp-based ELU"):
        assert text in table, text


def _derived_numbers_agree(rows):
    """Each number a row derives from its timings is that formula of them (the timings themselves vary)."""
    import math

    from benchmarks.rows import CI
    from vae_tut.parallel import network_flops
    from vae_tut.train import MONITOR_SIZE

    loader = rows["loader"]
    assert loader["images"] == CI.train_size
    assert loader["speedup"] == pytest.approx(loader["dataloader_s"] / loader["vae_tut_s"])
    x = rows["throughput"]
    assert x["images"] == CI.train_size and set(x["cnn_step_ms"]) == {"fp32", "bf16"}
    for arch in ("mlp", "cnn"):
        r = x[f"{arch}_fp32"]
        assert r["gflop_per_epoch"] == pytest.approx(network_flops(arch, 2)[0] * CI.train_size / 1e9)
        assert r["gflops"] == pytest.approx(r["gflop_per_epoch"] / r["epoch_s"])
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / x["fp32_peak_gflops"])
    par = rows["parallel"]["mlp"]
    assert par["throughput_s"] == pytest.approx(max(par["workers_s"]) / rows["parallel"]["cores"])
    assert par["speedup"] == pytest.approx(par["one_process_s"] / par["throughput_s"])
    lik = rows["likelihood"]
    assert (lik["images"], lik["k"]) == CI.likelihood
    assert lik["minutes_all_cnn"] == pytest.approx(lik["cnn_models"] * lik["seconds_per_model"] / lik["cores"] / 60)
    options = rows["cnn_options"]
    run_s = 15 * math.ceil(60_000 / 256) * options["eager_step_ms"] / 1e3  # 15 epochs of 235 steps
    assert options["test_share_of_run"] == pytest.approx(
        options["test_pass_s"] * (1 + 15 * MONITOR_SIZE / 10_000) / run_s)  # the test pass and 15 monitors
    for name in ("cnn_fp32", "cnn_bf16", "mlp_fp32"):
        elu = rows["elu"][name]
        assert elu["speedup"] == pytest.approx(elu["step_ms"]["torch elu"] / elu["step_ms"]["exp-based elu"])


def test_side_by_side_shows_every_kind_and_leaves_gaps_blank():
    full = {"mode": "full", "measured": "2026-11-29 10:00:00",
            "machine": {"cpu": "A", "flags": ["avx2"]},
            "rows": {"tests": {"returncode": 0, "minutes": 4.0, "peak_rss_mb": 900.0}}}
    other = {"mode": "full", "measured": "2026-11-28 10:00:00",
             "machine": {"cpu": "B", "flags": ["avx2", "avx512f"]},
             "rows": {"tests": {"returncode": 0, "minutes": 7.5, "peak_rss_mb": 800.0},
                      "loader": {"dataloader_s": 3.0, "vae_tut_s": 1.0, "speedup": 3.0}}}
    table = report.side_by_side({"a": full, "b": other})
    lines = table.splitlines()
    assert "A (avx2), 2026-11-29" in lines[0] and "B (avx2, avx512f), 2026-11-28" in lines[0]
    tests = next(line for line in lines if "make test" in line)
    assert "4.0 min, peak 900 MiB (met)" in tests and "7.5 min, peak 800 MiB (not met)" in tests
    loader = next(line for line in lines if "DataLoader" in line)
    assert "3.0× faster" in loader and loader.count("|") == 5


def test_book_row_refuses_a_cache_that_is_not_empty(tmp_path):
    (tmp_path / "some-run").mkdir()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.perf", "--rows", "book",
                           "--grid-cache", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("times training from an empty cache")


def test_committed_results_render():
    """Every committed kind is a column, and each one's measured test-suite time shows in its cell."""
    kinds = report.load_all()
    assert kinds, "benchmarks/results/ holds no results"
    lines = report.side_by_side(kinds).splitlines()
    header = lines[0]
    assert all(report.kind_heading(results) in header for results in kinds.values())
    cells = [c.strip() for c in next(line for line in lines if "make test" in line).split("|")[3:-1]]
    for results, cell in zip(kinds.values(), cells):
        minutes = results["rows"].get("tests", {}).get("minutes")
        assert (f"{minutes:.1f} min" in cell) if minutes is not None else cell == ""


def test_folding_batch_norm_keeps_the_outputs_and_the_original():
    """The benchmark's folded CNN decodes and encodes like the model it came from, which is left as it was."""
    import torch

    from benchmarks.rows import fold_batch_norm
    from vae_tut.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 3)
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(64, 1, 28, 28))  # running statistics far from 0 and 1
    model.eval()
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 6
    z, x = torch.randn(16, 3), torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.decode(z), folded.decode(z), atol=1e-5)
        assert torch.allclose(model.encode(x)[0], folded.encode(x)[0], atol=1e-5)


def test_forecast_errors_compare_each_line_with_the_real_end(tmp_path):
    """Each forecast is set against the minutes that really were left; lines near the end are left out."""
    lines = ["grid: 3 tasks, ~40 min (estimate) [at 0.0 min]",
             "[1/3] a: epoch 1/2, 5.0 s/epoch, run ETA 1 min, grid ~25 min left [at 5.0 min]",
             "[2/3] b: epoch 2/2, 5.0 s/epoch, run ETA 0 min, grid ~2.0 min left [at 28.0 min]",
             "grid: done in 30.0 min [at 30.0 min]"]
    (tmp_path / "k.grid.log").write_text("\n".join(lines))
    log = report.grid_log("k", tmp_path)
    assert report.grid_log("other", tmp_path) is None
    assert report.forecast_errors(log) == [(0.0, 40.0, 30.0), (5.0, 25.0, 25.0)]
    assert report.forecast_errors("\n".join(lines[:-1])) == []  # an unfinished grid tells nothing


def test_the_exp_based_elu_is_torchs_elu_to_float32_rounding():
    import torch

    from benchmarks.rows import _exp_elu_module

    x = torch.linspace(-30, 5, 100_001).requires_grad_()
    ours, theirs = _exp_elu_module()(x), torch.nn.functional.elu(x)
    assert float((ours - theirs).abs().max().detach()) < 1e-7   # exp(x) - 1 loses only the rounding of exp
    assert torch.equal(ours[x > 0], x[x > 0])               # the positive side is x itself
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_theirs, = torch.autograd.grad(theirs.sum(), x)
    assert float((g_ours - g_theirs).abs().max()) < 1e-6
