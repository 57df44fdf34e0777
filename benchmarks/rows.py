"""The benchmark's measurements, one function a row, each run in a fresh process by ``perf.py``."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measure import ROOT, load_train, matmul_gflops, run_measured


@dataclass
class Mode:
    """Sizes of one benchmark mode: ``full`` (the real thing) or ``ci`` (every row, tiny)."""

    name: str
    train_size: int | None  # training images per epoch (None: all 60,000)
    peak_size: int  # side of the square matrices for the matmul peak
    seeds: tuple[int, ...]  # seeds of the fp32 reference runs (accuracy row)
    likelihood: tuple[int, int]  # test images and samples k of the likelihood row
    archs: tuple[str, ...]  # the networks timed by the threads and parallel rows
    accuracy: tuple[str, ...] | None  # the base runs of the accuracy row (None: all of them)
    extra: dict[str, Any] = field(default_factory=dict)


FULL = Mode("full", None, 2048, (0, 1, 2), (1000, 1000), ("mlp", "cnn"), None)
# every row once, as small as it can be: the threads, parallel and accuracy rows time only the MLP
# (their code does not depend on the network; each of their processes costs a start-up), and the
# test sets have 1,024 images (measure.load_train)
CI = Mode("ci", 1024, 256, (0, 1), (20, 10), ("mlp",), ("mlp-mnist",))
MODES = {"full": FULL, "ci": CI}


def _python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter at the repository root; its last line of output."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


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
    train_x, test_x = load_train(mode.train_size)

    def dataloader_epoch() -> float:
        torch.manual_seed(0)
        model = build_model("mlp", 2)
        opt = torch.optim.Adam(model.parameters(), lr=DEFAULT_LR["mlp"])
        started = time.perf_counter()
        for x, _ in DataLoader(ds, batch_size=256, shuffle=True):
            out = model(x)
            loss = vae_loss(x, out.logits, out.mean, out.var, 0.05).total
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - started

    def vae_tut_epoch() -> float:
        torch.manual_seed(0)
        return train.fit(build_model("mlp", 2), train_x, test_x, c=0.05, lr=DEFAULT_LR["mlp"],
                         batch_size=256, epochs=1, seed=0, device="cpu", progress=False).seconds

    base, ours = [], []
    for _ in range(2):  # interleaved, best of two each
        base.append(dataloader_epoch())
        ours.append(vae_tut_epoch())
    return {"dataloader_s": min(base), "vae_tut_s": min(ours), "speedup": min(base) / min(ours),
            "images": len(train_x)}


def _cnn_step_ms(precision: str, steps: int) -> float:
    """Milliseconds of one CNN training step on a 256-image batch (channels-last), best of ``steps``."""
    import torch

    from vae_tut.losses import vae_loss
    from vae_tut.models import build_model
    from vae_tut.train import autocast, make_optimizer

    torch.manual_seed(0)
    model = build_model("cnn", 2).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, 1e-3, torch.device("cpu"))
    x = torch.rand(256, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for _ in range(steps + 1):  # the first is a warm-up
        t = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            out = model(x)
        loss = vae_loss(x, out.logits, out.mean, out.var, 0.05).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def row_throughput(mode: Mode) -> dict[str, Any]:
    """Training GFLOP/s of both networks against the matmul peaks measured alongside.

    bf16 is timed in full only where the CPU has bf16 units; elsewhere a few
    CNN steps show what bf16 autocast would cost there.
    """
    import torch

    from vae_tut import train
    from vae_tut.experiments import DEFAULT_LR, DEFAULT_PRECISION
    from vae_tut.models import build_model
    from vae_tut.parallel import network_flops

    native = train.native_bf16("cpu")
    train_x, test_x = load_train(mode.train_size)
    out: dict[str, Any] = {"images": len(train_x), "native_bf16": native,
                           "fp32_peak_gflops": matmul_gflops(mode.peak_size, "float32")}
    # emulated bf16 runs at about 1 GFLOP/s: a small product shows that without waiting minutes
    out["bf16_peak_gflops"] = matmul_gflops(mode.peak_size if native else 256, "bfloat16",
                                            10 if native else 2)
    out["cnn_step_ms"] = {p: _cnn_step_ms(p, 5 if mode.name == "full" else 1) for p in ("fp32", "bf16")}
    out["default_precision"] = {arch: train.resolve_precision(DEFAULT_PRECISION[arch], "cpu")
                                for arch in ("mlp", "cnn")}
    cases = [("mlp", "fp32"), ("cnn", "fp32")] + ([("cnn", "bf16")] if native else [])
    for arch, precision in cases:
        torch.manual_seed(0)
        model = build_model(arch, 2)
        flops = network_flops(arch, 2)[0] * len(train_x)
        result = train.fit(model, train_x, test_x, c=0.05, lr=DEFAULT_LR[arch], batch_size=256, epochs=1,
                           seed=0, device="cpu", progress=False, precision=precision)
        gflops = flops / result.seconds / 1e9
        peak = out["bf16_peak_gflops"] if precision == "bf16" else out["fp32_peak_gflops"]
        out[f"{arch}_{precision}"] = {"epoch_s": result.seconds, "gflop_per_epoch": flops / 1e9,
                                      "gflops": gflops, "peak_fraction": gflops / out["fp32_peak_gflops"],
                                      "own_peak_fraction": gflops / peak}
    out["fp32_peak_repeat_gflops"] = matmul_gflops(mode.peak_size, "float32")
    return out


def fold_batch_norm(model: Any) -> Any:
    """A copy of ``model`` in eval mode with each batch norm that follows a (transposed) convolution
    folded into that convolution's weights and bias: the same outputs, one pass less per layer."""
    import copy

    import torch
    from torch import nn

    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                # Conv2d weights are [out, in, kh, kw]; ConvTranspose2d weights are [in, out, kh, kw]
                shape = (-1, 1, 1, 1) if isinstance(conv, nn.Conv2d) else (1, -1, 1, 1)
                with torch.no_grad():
                    conv.weight.mul_(scale.reshape(shape))
                    conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
                seq[i + 1] = nn.Identity()
    return model


def _median_step_ms(step: Callable[[], object], steps: int) -> float:
    step()  # warm-up (for a compiled model: the compilation)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def row_cnn_options(mode: Mode) -> dict[str, Any]:
    """Three ways to speed up the CNN that ``vae_tut`` does not use, each against what it does, on one
    thread as a grid worker runs (issue 23): batch norm + ELU fused by ``torch.compile``, batch norm
    folded into the convolutions for chapter 10's importance sampling, and a faster test pass (its
    share of a run bounds what any speed-up of it can save)."""
    import torch

    from vae_tut import evaluate, train
    from vae_tut.experiments import DEFAULT_PRECISION
    from vae_tut.losses import vae_loss
    from vae_tut.models import build_model

    torch.set_num_threads(1)
    full = mode.name == "full"
    precision = train.resolve_precision(DEFAULT_PRECISION["cnn"], "cpu")
    out: dict[str, Any] = {"precision": precision, "threads": 1}
    x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)

    def step_of(compiled: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        model = build_model("cnn", 2).to(memory_format=torch.channels_last)
        run = torch.compile(model) if compiled else model
        opt = train.make_optimizer(model, 1e-3, torch.device("cpu"))

        def step() -> None:
            with train.autocast(torch.device("cpu"), precision):
                o = run(x)
            loss = vae_loss(x, o.logits, o.mean, o.var, 0.05).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    steps = 15 if full else 2
    out["eager_step_ms"] = _median_step_ms(step_of(False), steps)
    if full:  # compiling takes tens of seconds: the CI mode skips it
        # an empty inductor cache, so the time is what a fresh worker pays (this row has its own process)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="vae-tut-inductor-")
        started = time.perf_counter()
        compiled = step_of(True)
        compiled()
        out["compile_s"] = time.perf_counter() - started
        out["compiled_step_ms"] = _median_step_ms(compiled, steps)

    torch.manual_seed(0)
    model = build_model("cnn", 2)
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for _ in range(3):
            model(torch.rand(256, 1, 28, 28))
    model.eval()
    folded = fold_batch_norm(model)
    images, k = (torch.rand(20, 1, 28, 28), 500) if full else (torch.rand(2, 1, 28, 28), 20)
    z = torch.randn(64, 2)
    with torch.no_grad():
        out["fold_max_abs_diff"] = float((model.decode(z) - folded.decode(z)).abs().max())
    for name, m in (("plain", model), ("folded", folded)):
        started = time.perf_counter()
        evaluate.log_importance_weights(m, images, 0.05, k)
        out[f"is_{name}_s"] = time.perf_counter() - started

    n_train, n_test = 60_000, 10_000
    batches = -(-n_train // 256)
    test_x = torch.rand(n_test if full else 500, 1, 28, 28)
    started = time.perf_counter()
    train.average_loss(model, test_x, 0.05)
    test_s = (time.perf_counter() - started) * n_test / len(test_x)
    monitor_s = test_s * train.MONITOR_SIZE / n_test
    epochs = 15
    run_s = epochs * batches * out["eager_step_ms"] / 1e3
    out["test_pass_s"] = test_s
    out["test_share_of_run"] = (test_s + epochs * monitor_s) / run_s
    return out


def row_threads(mode: Mode) -> dict[str, Any]:
    """One epoch of each network (default precision) under three thread settings, each a fresh process.

    OpenMP reads ``OMP_WAIT_POLICY`` when a process starts, so every setting gets
    its own interpreter: the default (spin briefly, then sleep), ``PASSIVE`` (sleep
    at once) and a single thread.
    """
    settings = {"default": ({}, None), "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
                "1 thread": ({}, 1)}
    out: dict[str, Any] = {}
    for arch in mode.archs:
        out[arch] = {}
        for label, (env, threads) in settings.items():
            code = (f"from benchmarks.measure import epoch_seconds; "
                    f"print(epoch_seconds({arch!r}, {mode.train_size!r}, {threads!r}))")
            base_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env | env,
                                  capture_output=True, text=True, check=True)
            out[arch][label] = float(proc.stdout.strip().splitlines()[-1])
    return out


def row_parallel(mode: Mode) -> dict[str, Any]:
    """One process using every core against one single-thread process per core, side by side.

    This is the choice behind ``reproduce --jobs``: N single-thread workers
    finish an epoch each in the time shown, so their throughput is that time / N.
    """
    from vae_tut.parallel import available_cores

    cores = available_cores()
    out: dict[str, Any] = {"cores": cores}
    for arch in mode.archs:
        one = float(_python(f"from benchmarks.measure import epoch_seconds; "
                            f"print(epoch_seconds({arch!r}, {mode.train_size!r}, {cores}))"))
        start_at = time.time() + (15 if mode.name == "full" else 4)  # every worker has loaded the data by then
        code = (f"from benchmarks.measure import epoch_seconds; "
                f"print(epoch_seconds({arch!r}, {mode.train_size!r}, 1, start_at={start_at!r}))")
        procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
                 for _ in range(cores)]
        each = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        out[arch] = {"one_process_s": one, "workers_s": each, "throughput_s": max(each) / cores,
                     "speedup": one / (max(each) / cores)}
    return out


def row_accuracy(mode: Mode) -> dict[str, Any]:
    """Final train loss of each base run at its default precision vs fp32 runs over several seeds."""
    from vae_tut.experiments import BASE, run
    from vae_tut.train import native_bf16

    if not native_bf16("cpu"):
        return {"skipped": "no bf16 units: every default here is fp32, the same as the reference"}
    rows = {}
    for name, config in BASE.items():
        if mode.accuracy is not None and name not in mode.accuracy:
            continue
        if mode.train_size is not None:
            config = dataclasses.replace(config, epochs=1, train_size=mode.train_size)
        fast = run(config, progress=False, device="cpu")
        ref = [run(dataclasses.replace(config, precision="fp32", seed=s), progress=False,
                   device="cpu").train["total"] for s in mode.seeds]
        mean = statistics.fmean(ref)
        sd = statistics.stdev(ref) if len(ref) > 1 else 0.0
        value = fast.train["total"]
        rows[name] = {"precision": fast.config.precision, "final_train_total": value,
                      "fp32_seeds": list(mode.seeds), "fp32_totals": ref, "fp32_mean": mean,
                      "fp32_sd": sd, "z_score": (value - mean) / sd if sd > 0 else None,
                      "within_2sd": abs(value - mean) <= 2 * sd}
    return {"runs": rows}


def row_likelihood(mode: Mode) -> dict[str, Any]:
    """Chapter 10's importance sampling of one CNN model, single-threaded as a grid worker runs it."""
    from types import SimpleNamespace

    import torch

    from vae_tut.likelihood import LIKELIHOOD_MODELS, evaluate_run
    from vae_tut.models import build_model
    from vae_tut.parallel import available_cores

    torch.set_num_threads(1)
    n_images, k = mode.likelihood
    _, test_x = load_train(None)
    torch.manual_seed(0)
    config = LIKELIHOOD_MODELS["cnn-mnist-z2"].resolved("cpu")
    model = SimpleNamespace(config=config, model=build_model("cnn", 2).eval())
    started = time.perf_counter()
    evaluate_run(model, test_x[:n_images], ks=(1, k), cache=False)
    seconds = time.perf_counter() - started
    n_cnn = sum(c.arch == "cnn" for c in LIKELIHOOD_MODELS.values())
    return {"images": n_images, "k": k, "seconds_per_model": seconds, "cnn_models": n_cnn,
            "cores": available_cores(), "minutes_all_cnn": n_cnn * seconds / available_cores() / 60}


def row_flops(mode: Mode) -> dict[str, Any]:
    """The arithmetic `make book` must do, counted by the FLOP counter (the same on every machine).

    Training: every distinct run of the grid, one training step per image and epoch. Chapter 10:
    one decoder pass per image and sample (k, plus the ELBO's samples) for each of its models.
    Divided by a CPU's matrix-multiply peak this is the least time the book can take there.
    """
    from vae_tut.experiments import QUICK_TRAIN_SIZE, grid
    from vae_tut.likelihood import LIKELIHOOD_MODELS, likelihood_settings
    from vae_tut.parallel import network_flops

    configs = {c.resolved("cpu").key(): c.resolved("cpu") for c in grid().values()}
    train_flops = {"mlp": 0.0, "cnn": 0.0}
    for config in configs.values():
        images = 60_000 if mode.name == "full" else QUICK_TRAIN_SIZE
        per_image = network_flops(config.arch, config.z, config.kind, config.hidden)[0]
        train_flops[config.arch] += per_image * images * config.epochs
    settings = likelihood_settings()
    decodes = settings["n_images"] * (max(settings["ks"]) + settings["elbo_samples"])
    likelihood = sum(network_flops(c.arch, c.z, c.kind, c.hidden)[2] * decodes for c in LIKELIHOOD_MODELS.values())
    return {"runs": len(configs), "train_tflop": {k: v / 1e12 for k, v in train_flops.items()},
            "likelihood_tflop": likelihood / 1e12,
            "total_tflop": (sum(train_flops.values()) + likelihood) / 1e12}


def _book_build(path: str, cache: str, extra: list[str] | None = None) -> dict[str, Any]:
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    return run_measured([jb, "build", ".", "--path-output", path, *(extra or [])],
                        {"VAE_TUT_CACHE": cache, "VAE_TUT_PROGRESS": "0"})


def row_book(mode: Mode) -> dict[str, Any]:
    """What ``make book`` costs: the grid from an empty run cache, the first build, a cached rebuild.

    Full mode: ``python -m vae_tut reproduce`` into an empty run cache (the parallel
    grid and chapter 10's estimates), then ``jupyter-book build`` of the whole
    book into a new folder (every notebook executes, reading the run cache),
    ``reproduce`` again (nothing left to train), and a rebuild of every page
    from the execution cache. CI mode: the quick base grid and a one-page book.
    """
    with tempfile.TemporaryDirectory(prefix="vae-tut-book-") as tmp:
        cache = mode.extra.get("grid_cache") or str(Path(tmp) / "runs")
        cmd = [sys.executable, "-m", "vae_tut", "reproduce", "--out", str(Path(tmp) / "grid.md")]
        if mode.name == "ci":
            cmd += ["--quick", "--only", "base"]
        env = {"VAE_TUT_CACHE": cache, "VAE_TUT_PROGRESS": "0"}
        grid = run_measured(cmd, env)
        again = run_measured(cmd, env)
        if mode.name == "ci":
            book = Path(tmp) / "book"
            book.mkdir()
            (book / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: cache\n")
            (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
            (book / "index.md").write_text("# Index\n\nOne page.\n")
            jb = str(Path(sys.executable).with_name("jupyter-book"))
            first = run_measured([jb, "build", str(book)])
            rebuild = run_measured([jb, "build", "--all", str(book)])
        else:
            out = str(Path(tmp) / "build")
            first = _book_build(out, cache, ["-W", "-n", "--keep-going"])
            rebuild = _book_build(out, cache, ["--all"])
    from vae_tut.experiments import grid as named_grid

    runs = len({c.resolved("cpu").key() for c in named_grid("base" if mode.name == "ci" else None).values()})
    parts = {"grid": grid, "grid_again": again, "first_build": first, "rebuild": rebuild}
    return {"runs": runs, "book": "one-page stand-in" if mode.name == "ci" else "whole book",
            **{k: {**v, "minutes": v["wall_s"] / 60} for k, v in parts.items()},
            "empty_cache_minutes": (grid["wall_s"] + first["wall_s"]) / 60,
            "full_cache_minutes": (again["wall_s"] + first["wall_s"]) / 60,
            "ok": all(v["returncode"] == 0 for v in parts.values())}


def row_book_fetched(mode: Mode) -> dict[str, Any]:
    """What a reader's ``make book`` costs when the runs are published: the local run cache (a full
    build's) is published (``vae_tut.remote.publish``) into a folder served over HTTP on 127.0.0.1, and a
    fresh clone of this repository runs ``make book`` with an empty run cache and ``VAE_TUT_RUNS_URL``
    pointing at it. Full mode only (it needs a full run cache); the clone's own set-up is included."""
    import functools
    import http.server
    import threading

    from vae_tut import remote

    if mode.name != "full":
        return {"skipped": "needs the run cache of a full build"}
    with tempfile.TemporaryDirectory(prefix="vae-tut-fetched-") as tmp:
        published = Path(tmp) / "runs"
        entries = remote.publish(published)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(published))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            clone = Path(tmp) / "clone"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            env = {"VAE_TUT_CACHE": str(Path(tmp) / "empty-cache"), "VAE_TUT_PROGRESS": "0",
                   "VAE_TUT_RUNS_URL": f"http://127.0.0.1:{server.server_address[1]}/"}
            result = run_measured(["make", "-s", "book"], env, cwd=clone)
            counts = remote.origin_counts(env["VAE_TUT_CACHE"])
        finally:
            server.shutdown()
    return {**result, "minutes": result["wall_s"] / 60, "published_entries": entries,
            "trained": counts.get("trained", 0), "fetched": counts.get("fetched", 0)}


def row_tests(mode: Mode) -> dict[str, Any]:
    """Wall time and peak memory of the README's test command (``make test``) from an empty run cache.

    CI mode runs one small test file instead, with the same settings.
    """
    if mode.name == "ci":
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_losses.py"]
        env = {"VAE_TUT_QUICK": "1", "OMP_NUM_THREADS": "1"}
    else:
        cmd, env = ["make", "-s", "test"], {}
    with tempfile.TemporaryDirectory(prefix="vae-tut-test-runs-") as runs:  # as on a fresh machine
        result = run_measured(cmd, {**env, "VAE_TUT_PROGRESS": "0", "VAE_TUT_CACHE": runs})
    result["minutes"] = result["wall_s"] / 60
    result["subset"] = "tests/test_losses.py" if mode.name == "ci" else "all"
    return result


def _exp_elu_module() -> Any:
    """An ELU module computed as ``where(x > 0, x, exp(min(x, 0)) - 1)`` with its own backward
    (``1`` or ``y + 1``): torch's ``elu`` calls ``expm1``, which is not vectorised in some kernels.
    Equal to torch's ELU to about 6e-8 (the rounding of exp near 0)."""
    import torch
    from torch import nn

    class _ExpELU(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            y = torch.where(x > 0, x, torch.clamp(x, max=0).exp() - 1)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (y,) = ctx.saved_tensors
            return grad * torch.where(y > 0, 1.0, y + 1)

    class ExpELU(nn.Module):
        def forward(self, x: Any) -> Any:
            return _ExpELU.apply(x)

    return ExpELU()


def _swap_elu(model: Any, make: Callable[[], Any]) -> Any:
    """``model`` with every ``nn.ELU`` child replaced by ``make()``."""
    from torch import nn

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ELU):
                setattr(module, name, make())
    return model


def _step_timer(model: Any, precision: str, images: Any, checked: bool = False) -> Callable[[], None]:
    """One training step of ``model`` on ``images`` as ``fit`` takes it (``checked``: with the per-batch
    input and output checks and the three ``.item()`` reads the step had before December 2026)."""
    import torch

    from vae_tut import train, validation
    from vae_tut.experiments import DEFAULT_LR
    from vae_tut.losses import step_terms, vae_loss

    device = torch.device("cpu")
    arch = "cnn" if train.has_convolutions(model) else "mlp"
    if arch == "cnn":
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    opt = train.make_optimizer(model, DEFAULT_LR[arch], device)

    def step() -> None:
        if checked:  # the encoder's old check of its input
            validation.images(images, unit=False)
        with train.autocast(device, precision):
            o = model(images)
        if checked:
            assert all(bool(torch.isfinite(t).all()) for t in (o.mean, o.var, o.logits))
            terms = vae_loss(images, o.logits, o.mean, o.var, 0.05)
            terms.total.item(), terms.recon.item(), terms.kl.item()
        else:
            terms = step_terms(images, o.logits, o.mean, o.var, 0.05, "gaussian", "exact", None)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()

    return step


def row_elu(mode: Mode) -> dict[str, Any]:
    """Settles whether to replace torch's ELU: one thread, a training step of the CNN in float32 and in
    bfloat16 (and of the MLP in float32) with torch's ELU and with an exp-based ELU
    (:func:`_exp_elu_module`), plus the element-wise kernels on the CNN's largest activation. The book
    would adopt the exp-based ELU where it makes the default step at least 15 % faster on a kind
    (benchmarks/README.md records the decision)."""
    import torch

    from vae_tut.models import build_model

    torch.set_num_threads(1)
    full = mode.name == "full"
    x = torch.randn(256, 32, 14, 14, generator=torch.Generator().manual_seed(0))  # the CNN's largest
    exp_elu = _exp_elu_module()
    kernels = {"exp": torch.exp, "expm1": torch.expm1, "elu": torch.nn.functional.elu, "exp-based elu": exp_elu}
    out: dict[str, Any] = {"elements": x.numel(), "kernel_ms": {
        name: _median_step_ms(lambda f=f: f(x), 20 if full else 2) for name, f in kernels.items()}}
    with torch.no_grad():
        out["max_abs_difference"] = float((exp_elu(x) - torch.nn.functional.elu(x)).abs().max())
    images = torch.rand(256 if full else 32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for arch, precision in (("cnn", "fp32"), ("cnn", "bf16"), ("mlp", "fp32")):
        times = {}
        for name, make in (("torch elu", None), ("exp-based elu", _exp_elu_module)):
            torch.manual_seed(0)
            model = build_model(arch, 2)
            if make is not None:
                _swap_elu(model, make)
            times[name] = _median_step_ms(_step_timer(model, precision, images), 15 if full else 1)
        out[f"{arch}_{precision}"] = {"step_ms": times, "speedup": times["torch elu"] / times["exp-based elu"]}
    return out


def row_step_checks(mode: Mode) -> dict[str, Any]:
    """One thread, one training step with and without the per-batch checks the step had before
    December 2026 (input pixels, shapes, finiteness of every output, three ``.item()`` reads): what
    checking once per epoch saves. The MLP in float32, the CNN at its default precision here."""
    import torch

    from vae_tut import train
    from vae_tut.experiments import DEFAULT_PRECISION
    from vae_tut.models import build_model

    torch.set_num_threads(1)
    full = mode.name == "full"
    images = torch.rand(256 if full else 32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out: dict[str, Any] = {}
    for arch in ("mlp", "cnn"):
        precision = train.resolve_precision(DEFAULT_PRECISION[arch], "cpu")
        times = {}
        for name, checked in (("checked", True), ("unchecked", False)):
            torch.manual_seed(0)
            times[name] = _median_step_ms(_step_timer(build_model(arch, 2), precision, images, checked),
                                          30 if full else 1)
        out[arch] = {"precision": precision, "step_ms": times, "speedup": times["checked"] / times["unchecked"]}
    return out


ROW_FUNCS: dict[str, Callable[[Mode], dict[str, Any]]] = {
    "loader": row_loader, "throughput": row_throughput, "threads": row_threads,
    "parallel": row_parallel, "accuracy": row_accuracy, "likelihood": row_likelihood,
    "flops": row_flops, "book": row_book, "tests": row_tests, "cnn_options": row_cnn_options, "elu": row_elu,
    "step_checks": row_step_checks, "book_fetched": row_book_fetched,
}
ROWS = tuple(ROW_FUNCS)


def measure_row(name: str, mode: Mode) -> dict[str, Any]:
    """One row, measured in this process (``perf.py`` starts a fresh one for each)."""
    from .measure import peak_rss_mb

    value = ROW_FUNCS[name](mode)
    value["row_peak_rss_mb"] = peak_rss_mb()
    return json.loads(json.dumps(value))
