"""How fast is vae_tut on this machine? One command, one table (the Performance appendix).

    python -m benchmarks.perf            # full mode: about 1.5 h on a 2-core laptop CPU
    python -m benchmarks.perf --ci       # CI-sized: every row, on tiny inputs, in about a minute

Each row runs in its own Python process, so that its peak memory (resident set
size) is its own. Comparisons are measured side by side in the same process and
reported as ratios, because a shared machine's speed drifts. The full-mode
results are written to ``benchmarks/results.json``; the Performance appendix of
the book renders that file, so the page shows what was measured, not typed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
ROWS = ("loader", "throughput", "threads", "accuracy", "grid", "tests", "rebuild")
TARGETS = {  # the targets on a 2-core CPU
    "mlp_peak_fraction": 0.50, "cnn_peak_fraction": 0.40,
    "grid_minutes": 40.0, "tests_minutes": 5.0, "rebuild_seconds": 60.0,
}


@dataclass
class Mode:
    """Sizes of one benchmark mode: ``full`` (the real thing) or ``ci`` (every row, tiny)."""

    name: str
    train_size: int | None  # training images per epoch (None: all 60,000)
    peak_size: int  # side of the square matrices for the matmul peak
    seeds: tuple[int, ...]  # seeds of the fp32 reference runs (accuracy row)
    extra: dict[str, Any] = field(default_factory=dict)


FULL = Mode("full", None, 2048, (0, 1, 2))
CI = Mode("ci", 1024, 256, (0, 1))


# ---------------------------------------------------------------- measuring

def run_measured(cmd: list[str], env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit status and peak memory (largest process in its tree)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    # ru_maxrss of the children this process has waited for, in KiB on Linux.
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "returncode": proc.returncode, "peak_rss_mb": peak_kib / 1024,
            "output_tail": out[-3000:]}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(size: int, dtype_name: str = "float32", repeats: int = 10) -> float:
    """Best-of-``repeats`` throughput of a ``size``-square matrix product, in GFLOP/s."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def training_flops_per_image(model: Any) -> float:
    """FLOPs of one training step per image: forward, backward to inputs and weights.

    Counted from the shapes of the linear and (transposed) convolution layers,
    2 FLOPs per multiply-add: the forward product once, the weight gradient once,
    the input gradient once more for every layer whose input needs a gradient
    (all but the first). Batch norm, activations, the loss and Adam are not
    counted, so the figure is a lower bound on the work done.
    """
    import torch
    from torch import nn

    total = 0.0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.Linear):
            macs = x.numel() // x.shape[-1] * module.in_features * module.out_features
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs = x.numel() * module.out_channels * k // module.groups
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs = output.numel() * module.in_channels * k // module.groups
        else:
            return
        total += 2 * macs * (2 if id(module) in firsts else 3)

    firsts: set[int] = set()
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    firsts.add(id(layers[0]))  # the first layer sees the data, which needs no gradient
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            model.eval()
            model(torch.rand(1, 1, 28, 28))
    finally:
        for h in handles:
            h.remove()
    return total


def _load_train(mode: Mode, dataset: str = "mnist"):
    from vae_tut.data import load_dataset

    train_x, _ = load_dataset(dataset, "train")
    test_x, _ = load_dataset(dataset, "test")
    if mode.train_size is not None:
        train_x = train_x[:mode.train_size]
    return train_x, test_x


# ---------------------------------------------------------------- rows

def row_loader(mode: Mode) -> dict[str, Any]:
    """MLP epoch: the pytorch/examples way (Dataset + DataLoader + ToTensor) vs vae_tut's fit."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from vae_tut import train
    from vae_tut.data import data_root, load_dataset
    from vae_tut.experiments import DEFAULT_LR
    from vae_tut.losses import vae_loss
    from vae_tut.models import build_model

    load_dataset("mnist", "train")  # makes sure the raw files are where torchvision looks
    ds = datasets.MNIST(str(data_root()), train=True, download=False, transform=transforms.ToTensor())
    if mode.train_size is not None:
        ds = Subset(ds, range(mode.train_size))
    train_x, test_x = _load_train(mode)

    def dataloader_epoch() -> float:
        torch.manual_seed(0)
        model = build_model("mlp", 2)
        opt = torch.optim.Adam(model.parameters(), lr=DEFAULT_LR["mlp"])
        loader = DataLoader(ds, batch_size=256, shuffle=True)
        started = time.perf_counter()
        for x, _ in loader:
            out = model(x)
            loss = vae_loss(x, out.logits, out.mean, out.var, 0.05).total
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - started

    def vae_tut_epoch() -> float:
        torch.manual_seed(0)
        model = build_model("mlp", 2)
        result = train.fit(model, train_x, test_x, c=0.05, lr=DEFAULT_LR["mlp"], batch_size=256,
                           epochs=1, seed=0, device="cpu", progress=False)
        return result.seconds

    base, ours = [], []
    for _ in range(2):  # interleaved, best of two each
        base.append(dataloader_epoch())
        ours.append(vae_tut_epoch())
    return {"dataloader_s": min(base), "vae_tut_s": min(ours), "speedup": min(base) / min(ours),
            "images": len(train_x)}


def row_throughput(mode: Mode) -> dict[str, Any]:
    """Training GFLOP/s of the MLP and the CNN against the fp32 matmul peak measured alongside."""
    import torch

    from vae_tut import train
    from vae_tut.experiments import DEFAULT_LR, DEFAULT_PRECISION
    from vae_tut.models import build_model

    train_x, test_x = _load_train(mode)
    peak = matmul_gflops(mode.peak_size, "float32")
    peak_bf16 = matmul_gflops(mode.peak_size, "bfloat16")
    out: dict[str, Any] = {"fp32_peak_gflops": peak, "bf16_peak_gflops": peak_bf16,
                           "images": len(train_x)}
    cases = [("mlp", DEFAULT_PRECISION["mlp"]), ("cnn", DEFAULT_PRECISION["cnn"]), ("cnn", "fp32")]
    for arch, precision in cases:
        torch.manual_seed(0)
        model = build_model(arch, 2)
        flops = training_flops_per_image(model) * len(train_x)
        result = train.fit(model, train_x, test_x, c=0.05, lr=DEFAULT_LR[arch], batch_size=256, epochs=1,
                           seed=0, device="cpu", progress=False, precision=precision)
        gflops = flops / result.seconds / 1e9
        out[f"{arch}_{precision}"] = {"epoch_s": result.seconds, "gflop_per_epoch": flops / 1e9,
                                      "gflops": gflops, "peak_fraction": gflops / peak}
    out["fp32_peak_repeat_gflops"] = matmul_gflops(mode.peak_size, "float32")
    return out


def epoch_seconds(arch: str, mode_name: str, threads: int | None = None) -> float:
    """Seconds of one training epoch of ``arch`` at its default precision (fresh model, seed 0)."""
    import torch

    from vae_tut import train
    from vae_tut.experiments import DEFAULT_LR, DEFAULT_PRECISION
    from vae_tut.models import build_model

    if threads is not None:
        torch.set_num_threads(threads)
    train_x, test_x = _load_train(FULL if mode_name == "full" else CI)
    torch.manual_seed(0)
    result = train.fit(build_model(arch, 2), train_x, test_x, c=0.05, lr=DEFAULT_LR[arch],
                       batch_size=256, epochs=1, seed=0, device="cpu", progress=False,
                       precision=DEFAULT_PRECISION[arch])
    return result.seconds


def row_threads(mode: Mode) -> dict[str, Any]:
    """One epoch of each network under three thread settings, each in a fresh process.

    OpenMP reads ``OMP_WAIT_POLICY`` when a process starts, so every setting gets
    its own interpreter: the default (spin briefly, then sleep), ``PASSIVE`` (sleep
    at once) and a single thread.
    """
    settings = {"default": ({}, None), "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
                "1 thread": ({}, 1)}
    out: dict[str, Any] = {}
    for arch in ("mlp", "cnn"):
        out[arch] = {}
        for label, (env, threads) in settings.items():
            code = (f"from benchmarks.perf import epoch_seconds; "
                    f"print(epoch_seconds({arch!r}, {mode.name!r}, {threads!r}))")
            full_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
            proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env,
                                  capture_output=True, text=True, check=True)
            out[arch][label] = float(proc.stdout.strip().splitlines()[-1])
    return out


def row_accuracy(mode: Mode) -> dict[str, Any]:
    """Final train loss of each base run (default precision) vs fp32 runs over several seeds."""
    import dataclasses
    import statistics

    from vae_tut.experiments import BASE, run

    rows = {}
    for name, config in BASE.items():
        if mode.train_size is not None:
            config = dataclasses.replace(config, epochs=1, train_size=mode.train_size)
        fast = run(config, progress=False, device="cpu").train["total"]
        ref = [run(dataclasses.replace(config, precision="fp32", seed=s), progress=False,
                   device="cpu").train["total"] for s in mode.seeds]
        mean = statistics.fmean(ref)
        sd = statistics.stdev(ref) if len(ref) > 1 else 0.0
        rows[name] = {"precision": config.precision, "final_train_total": fast,
                      "fp32_seeds": list(mode.seeds), "fp32_totals": ref, "fp32_mean": mean,
                      "fp32_sd": sd, "z_score": (fast - mean) / sd if sd > 0 else None,
                      "within_2sd": abs(fast - mean) <= 2 * sd}
    return {"runs": rows}


def row_grid(mode: Mode) -> dict[str, Any]:
    """Wall time and peak memory of ``python -m vae_tut reproduce`` from an empty run cache."""
    with tempfile.TemporaryDirectory(prefix="vae-tut-grid-") as tmp:
        # the trained runs are kept only where --grid-cache names a folder
        cache = mode.extra.get("grid_cache") or str(Path(tmp) / "runs")
        cmd = [sys.executable, "-m", "vae_tut", "reproduce", "--out", str(Path(tmp) / "grid.md")]
        if mode.name == "ci":
            cmd += ["--quick", "--only", "base"]
        env = {"VAE_TUT_CACHE": str(cache), "VAE_TUT_PROGRESS": "0"}
        result = run_measured(cmd, env)
    from vae_tut.experiments import grid

    result["runs"] = len({c.key() for c in grid("base" if mode.name == "ci" else None).values()})
    result["subset"] = "quick base grid" if mode.name == "ci" else "all"
    result["cache"] = str(cache)
    result["minutes"] = result["wall_s"] / 60
    return result


def row_tests(mode: Mode) -> dict[str, Any]:
    """Wall time and peak memory of the README's quick-mode test suite, from an empty run cache."""
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-m", "not browser", "-q",
           "-p", "no:cacheprovider"]
    if mode.name == "ci":  # the suite cannot time itself from inside; one small file stands in
        cmd += ["tests/test_losses.py"]
    with tempfile.TemporaryDirectory(prefix="vae-tut-test-runs-") as runs:  # as on a fresh machine
        result = run_measured(cmd, {"VAE_TUT_QUICK": "1", "VAE_TUT_PROGRESS": "0", "VAE_TUT_CACHE": runs})
    result["minutes"] = result["wall_s"] / 60
    result["subset"] = "tests/test_losses.py" if mode.name == "ci" else "all"
    return result


def row_rebuild(mode: Mode) -> dict[str, Any]:
    """Wall time of rebuilding every page of the book when every notebook is in the execution cache."""
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    if mode.name == "ci":  # a one-page book stands in for the real one
        with tempfile.TemporaryDirectory() as tmp:
            book = Path(tmp)
            (book / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: cache\n")
            (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
            (book / "index.md").write_text("# Index\n\nOne page.\n")
            run_measured([jb, "build", str(book)], {})
            result = run_measured([jb, "build", "--all", str(book)], {})
            result["book"] = "one-page stand-in"
    else:
        out = mode.extra.get("book_path") or "_build"
        env = {"VAE_TUT_PROGRESS": "0"}
        args = [jb, "build", ".", "--path-output", out] if out != "_build" else [jb, "build", "."]
        first = run_measured(args, env)  # fills the execution cache if it was not full
        # --all: Sphinx reads and writes every page again; the notebooks' outputs come from the cache
        result = run_measured(args + ["--all"], env)
        result["first_build_s"] = first["wall_s"]
        result["book"] = out
    return result


ROW_FUNCS: dict[str, Callable[[Mode], dict[str, Any]]] = {
    "loader": row_loader, "throughput": row_throughput, "threads": row_threads,
    "accuracy": row_accuracy,
    "grid": row_grid, "tests": row_tests, "rebuild": row_rebuild,
}


# ---------------------------------------------------------------- the table

def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}


def _status(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "—"
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    short = (target - value) / target if higher_is_better else (value - target) / target
    return f"short by {short:.0%}"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measurement, value, target, status) for every row in ``results``."""
    r = results.get("rows", {})
    t = TARGETS
    out: list[tuple[str, str, str, str]] = []
    status = _status
    if results.get("mode") == "ci":  # tiny inputs: the targets do not apply
        status = lambda *args: "(CI-sized, not compared)"  # noqa: E731
    if "loader" in r:
        x = r["loader"]
        out.append(("MLP epoch, torchvision Dataset + DataLoader + ToTensor",
                    f"{x['dataloader_s']:.2f} s", "", ""))
        out.append(("MLP epoch, vae_tut trainer (tensors in memory)", f"{x['vae_tut_s']:.2f} s", "", ""))
        out.append(("speed-up of the vae_tut trainer", f"{x['speedup']:.2f}×", "", ""))
    if "throughput" in r:
        x = r["throughput"]
        out.append(("fp32 matrix-multiply peak (before / after the training runs)",
                    f"{x['fp32_peak_gflops']:.0f} / {x['fp32_peak_repeat_gflops']:.0f} GFLOP/s", "", ""))
        out.append(("bf16 matrix-multiply peak", f"{x['bf16_peak_gflops']:.0f} GFLOP/s", "", ""))
        for key, label, target in (("mlp_fp32", "MLP training, fp32", t["mlp_peak_fraction"]),
                                   ("cnn_bf16", "CNN training, bf16 autocast", t["cnn_peak_fraction"]),
                                   ("cnn_fp32", "CNN training, fp32 (for comparison)", None)):
            if key not in x:
                continue
            y = x[key]
            out.append((f"{label}: {y['epoch_s']:.1f} s/epoch, {y['gflops']:.0f} GFLOP/s",
                        f"{y['peak_fraction']:.0%} of fp32 peak",
                        f"≥ {target:.0%}" if target else "",
                        status(y["peak_fraction"], target, True) if target else ""))
    if "threads" in r:
        for arch, times in r["threads"].items():
            if not isinstance(times, dict):
                continue
            base = times["default"]
            for label, sec in times.items():
                out.append((f"{arch.upper()} epoch, {label}", f"{sec:.2f} s",
                            "", "" if label == "default" else f"{sec / base:.2f}× the default"))
    if "accuracy" in r:
        for name, y in r["accuracy"]["runs"].items():
            spread = (f"fp32 seeds {y['fp32_seeds']}: {y['fp32_mean']:.1f} ± {y['fp32_sd']:.1f}")
            out.append((f"final train loss, {name} ({y['precision']}) vs {spread}",
                        f"{y['final_train_total']:.1f}", "within 2 SD",
                        "met" if y["within_2sd"] else "not met"))
    for key, label, target, unit in (("grid", f"full reproduction grid (`python -m vae_tut reproduce`, "
                                      f"{r.get('grid', {}).get('runs', '?')} runs)",
                                      t["grid_minutes"], "min"),
                                     ("tests", "quick-mode test suite (README's test command)",
                                      t["tests_minutes"], "min")):
        if key in r:
            y = r[key]
            if y.get("subset", "all") != "all":
                label += f" [CI-sized: {y['subset']}]"
            out.append((f"{label}, peak memory {y['peak_rss_mb']:.0f} MiB",
                        f"{y['minutes']:.1f} min", f"≤ {target:g} {unit}",
                        status(y["minutes"], target, False) if y["returncode"] == 0 else "failed"))
    if "rebuild" in r:
        y = r["rebuild"]
        out.append((f"cached rebuild of the book ({y['book']}), peak memory {y['peak_rss_mb']:.0f} MiB",
                    f"{y['wall_s']:.0f} s", f"≤ {t['rebuild_seconds']:g} s",
                    status(y["wall_s"], t["rebuild_seconds"], False) if y["returncode"] == 0 else "failed"))
    return out


def format_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table, with the machine and mode above it."""
    m = results.get("machine", {})
    lines = [f"Mode: {results.get('mode', '?')}. Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
             f"torch {m.get('torch', '?')} with {m.get('torch_threads', '?')} threads, "
             f"OMP_WAIT_POLICY={m.get('omp_wait_policy', '?')}.", "",
             "| measurement | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(results)]
    return "\n".join(lines)


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    """The saved full-mode results, or an empty dict if the benchmark has not been run."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- command line

def _run_row_process(name: str, mode: Mode) -> dict[str, Any]:
    """Run one row in a fresh process; its result plus its own peak memory."""
    cmd = [sys.executable, "-m", "benchmarks.perf", "--row", name, "--mode", mode.name]
    if mode.extra.get("grid_cache"):
        cmd += ["--grid-cache", str(mode.extra["grid_cache"])]
    if mode.extra.get("book_path"):
        cmd += ["--book-path", str(mode.extra["book_path"])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark row {name!r} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="every row on tiny inputs (for the test suite)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to measure")
    parser.add_argument("--out", help="JSON file to write or update (default: benchmarks/results.json "
                        "in full mode, nothing in --ci mode)")
    parser.add_argument("--grid-cache", help="run cache for the grid row (default: a new empty folder)")
    parser.add_argument("--book-path", help="build folder for the rebuild row (default: _build)")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["full", "ci"], default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = CI if (args.ci or args.mode == "ci") else FULL
    if not args.row and args.grid_cache and "grid" in args.rows and Path(args.grid_cache).is_dir() \
            and any(Path(args.grid_cache).iterdir()):
        parser.error(f"--grid-cache {args.grid_cache} is not empty; the grid row times training "
                     "from an empty cache")
    mode.extra.update({"grid_cache": args.grid_cache, "book_path": args.book_path})

    if args.row:  # inside the per-row process
        value = ROW_FUNCS[args.row](mode)
        value["row_peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(value))
        return 0

    out = Path(args.out) if args.out else (None if mode is CI else RESULTS)
    results = load_results(out) if out is not None and out.exists() else {}
    if results.get("mode") not in (None, mode.name):
        results = {}
    results.update({"mode": mode.name, "machine": machine()})
    results.setdefault("rows", {})
    for name in args.rows:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        value = _run_row_process(name, mode)
        value["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        results["rows"][name] = value
        if out is not None:
            out.write_text(json.dumps(results, indent=1) + "\n")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
