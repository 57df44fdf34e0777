"""Measuring tools of the benchmark: the machine, its peak, FLOP counts, timed child processes."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides which kernels torch can use


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def machine() -> dict[str, Any]:
    """What the numbers are measured on: CPU, its capability flags, torch's kernel level, threads."""
    import torch

    from vae_tut.train import native_bf16

    model, flags = _cpuinfo()
    forced = os.environ.get("ATEN_CPU_CAPABILITY")
    return {"cpu": model, "flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count(),
            "torch_kernels": torch.backends.cpu.get_cpu_capability(),
            "kernels_forced": forced or None, "native_bf16": native_bf16("cpu"),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}


def kind_slug(m: dict[str, Any]) -> str:
    """A file name for a CPU kind, e.g. ``amd-epyc-7b13-avx2`` (``-kernels-avx2`` when forced)."""
    name = re.sub(r"\(r\)|\(tm\)|processor|cpu|@.*$|\d+-core", "", m["cpu"].lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    slug = "-".join([name or "cpu", *m["flags"]]).replace("_", "")
    if m.get("kernels_forced"):
        slug += f"-kernels-{m['kernels_forced'].lower()}"
    return slug


# Runs a command and writes the peak memory of its process tree to $VAE_TUT_PEAK_FILE. A small
# interpreter in between matters: Linux counts a child's memory from before its exec (a copy of
# the benchmark process, torch and all) in its peak, so the command must not be our direct child.
_PEAK_WRAPPER = ("import os, resource, subprocess, sys; "
                 "code = subprocess.run(sys.argv[1:]).returncode; "
                 "open(os.environ['VAE_TUT_PEAK_FILE'], 'w').write("
                 "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
                 "sys.exit(code)")


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit status, output tail and peak memory (its largest process)."""
    with tempfile.TemporaryDirectory(prefix="vae-tut-peak-") as tmp:
        peak_file = Path(tmp) / "peak"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *cmd], cwd=cwd,
                              env={**os.environ, **(env or {}), "VAE_TUT_PEAK_FILE": str(peak_file)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - started
        peak_kib = int(peak_file.read_text()) if peak_file.exists() else 0
    return {"wall_s": wall, "returncode": proc.returncode, "peak_rss_mb": peak_kib / 1024,
            "output_tail": proc.stdout[-3000:]}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(size: int, dtype_name: str = "float32", repeats: int = 10) -> float:
    """Best-of-``repeats`` throughput of a ``size``-square matrix product, in GFLOP/s."""
    import torch

    from vae_tut.estimate import matmul_rate

    return matmul_rate(torch.get_num_threads(), size, repeats, getattr(torch, dtype_name)) / 1e9


def load_train(train_size: int | None, dataset: str = "mnist"):
    """Training images and the test images of ``dataset``: all, or the first ``train_size`` of each
    (the CI mode, where a pass over 10,000 test images would cost more than the epoch timed)."""
    from vae_tut.data import load_dataset

    train_x, _ = load_dataset(dataset, "train")
    test_x, _ = load_dataset(dataset, "test")
    if train_size is not None:
        train_x, test_x = train_x[:train_size], test_x[:train_size]
    return train_x, test_x


def epoch_seconds(arch: str, train_size: int | None, threads: int | None = None,
                  precision: str = "default", start_at: float | None = None) -> float:
    """Seconds of one training epoch of ``arch`` (fresh model, seed 0; ``default``: its default precision).

    ``start_at`` (a ``time.time()``) makes several processes start their epoch
    together after loading the data, so that their epochs overlap.
    """
    import torch

    from vae_tut import train
    from vae_tut.experiments import DEFAULT_LR, DEFAULT_PRECISION
    from vae_tut.models import build_model

    if threads is not None:
        torch.set_num_threads(threads)
    train_x, test_x = load_train(train_size)
    precision = DEFAULT_PRECISION[arch] if precision == "default" else precision
    torch.manual_seed(0)
    model = build_model(arch, 2)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    result = train.fit(model, train_x, test_x, c=0.05, lr=DEFAULT_LR[arch], batch_size=256,
                       epochs=1, seed=0, device="cpu", progress=False, precision=precision)
    return result.seconds
