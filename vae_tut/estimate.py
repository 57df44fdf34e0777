"""What the grid's tasks cost and how long is left: the estimate ``python -m vae_tut reproduce`` prints
(Performance appendix).

The time left is priced in arithmetic, known before a task starts: its
floating-point operations (:func:`network_flops`, counted by torch's FLOP counter
on one small batch) divided by the speed, in FLOP/s per worker, measured on the
epochs finished so far (of the same kind of task once one has run, else of any);
before the first epoch, the speed of each kind of task timed here on a batch of its network
(:func:`calibrate`), corrected by what the first finished epochs show. :class:`Progress`
prints one line per task started, per epoch (at most one every ``interval`` seconds per run)
and per task done, each ending with the time since the start, ``[at 12.3 min]``, so a log
shows how good the estimates were (``benchmarks/report.py`` reads them back).
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .experiments import RunConfig
from .models import MLP_HIDDEN
from .pool import Task
from .train import resolve_device

# Training reaches about 0.2-0.4 of a single-thread matrix product's speed (Performance
# appendix), so before any epoch has finished a task is priced at this fraction of it.
EFFICIENCY = 0.3


# ---------------------------------------------------------------- what the work costs


@functools.cache
def network_flops(arch: str, z: int, kind: str = "vae", hidden: int = MLP_HIDDEN) -> tuple[float, float, float]:
    """FLOPs per image of a training step (forward and backward), an evaluation pass, and one decoding.

    Counted once per network by ``torch.utils.flop_counter.FlopCounterMode`` on a
    batch of 4: matrix products and convolutions only, a lower bound on the work.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .models import build_model

    batch = 4
    model = build_model(arch, z, kind, hidden)
    extra = (torch.zeros(batch, dtype=torch.long),) if getattr(model, "n_classes", 0) else ()
    x = torch.rand(batch, 1, 28, 28)
    with FlopCounterMode(display=False) as step:
        model.train()(x, *extra).logits.sum().backward()
    with torch.no_grad():
        with FlopCounterMode(display=False) as forward:
            model.eval()(x, *extra)
        with FlopCounterMode(display=False) as decode:
            model.decode(torch.zeros(batch, z), *extra)  # type: ignore[operator]
    step_f, forward_f, decode_f = (c.get_total_flops() / batch for c in (step, forward, decode))
    return step_f, forward_f, decode_f


def _timed(step: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    """Seconds per call of ``step`` after one warm-up call."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def _task_rate(task: Task, config: RunConfig) -> float:
    """FLOP/s of ``task``'s network here: two training steps of a batch, or the importance-sampling
    estimator on two images."""
    from .losses import vae_loss
    from .models import build_model
    from .train import autocast, forward, has_convolutions, make_optimizer

    device = resolve_device(task.kwargs.get("device"))
    model = build_model(config.arch, config.z, config.kind, config.hidden).to(device)
    if has_convolutions(model):
        model.to(memory_format=torch.channels_last)
    step_flops, _, decode_flops = network_flops(config.arch, config.z, config.kind, config.hidden)
    n = config.batch_size if task.epochs else 500
    x = torch.rand(n, 1, 28, 28, device=device)
    labels = torch.zeros(n, dtype=torch.long, device=device) if config.kind == "cvae" else None
    if task.epochs:
        optimizer = make_optimizer(model, config.lr or 1e-3, device)

        def step() -> None:
            with autocast(device, config.precision or "fp32"):
                out = forward(model, x, labels)
            vae_loss(x, out.logits, out.mean, out.var, config.c).total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step_flops * n / _timed(step, device)
    from .evaluate import log_importance_weights

    _, forward_flops, _ = network_flops(config.arch, config.z, config.kind, config.hidden)
    images, k = torch.rand(2, 1, 28, 28), 250  # the estimator itself, on 2 images with 250 samples each
    seconds = _timed(lambda: log_importance_weights(model, images, 0.05, k), device)  # type: ignore[arg-type]
    return len(images) * (forward_flops + k * decode_flops) / seconds


def calibrate(tasks: list[Task], threads: int) -> dict[str, float]:
    """FLOP/s per worker of each family of ``tasks``, timed here on its first task's network with
    ``threads`` threads (:func:`_task_rate`, a second or two in all).

    What it cannot see, such as workers sharing memory bandwidth, :class:`Progress` corrects by the
    ratio of measured to calibrated speed as soon as any task has reported.
    """
    rates: dict[str, float] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for task in tasks:
            config = task.args[0] if task.args else None
            if task.family not in rates and isinstance(config, RunConfig):
                rates[task.family] = _task_rate(task, config)
    finally:
        torch.set_num_threads(previous)
    return rates


def matmul_rate(threads: int = 1, n: int = 512, repeats: int = 8, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an ``n x n`` matrix product (best of ``repeats``) on ``threads`` threads: the yardstick of
    the time estimate, and of the benchmarks' peak (Performance appendix)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.rand(n, n).to(dtype)
        a @ a  # warm-up
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 / max(best, 1e-9)


# ---------------------------------------------------------------- progress and the time left


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}"


@dataclass
class Progress:
    """Prints the progress lines and prices the work left at the speeds measured so far
    (the :class:`vae_tut.pool.Listener` of :func:`vae_tut.parallel.run_tasks`)."""

    tasks: list[Task]
    jobs: int
    say: Callable[[str], None]
    interval: float
    default_rate: float  # FLOP/s per worker until a speed is measured
    calibrated: dict[str, float] = field(default_factory=dict)  # family -> FLOP/s timed before the start
    start: float = field(default_factory=time.monotonic)
    work: dict[str, list[float]] = field(default_factory=dict)  # family -> [FLOPs, seconds] measured
    done_epochs: dict[str, int] = field(default_factory=dict)
    epoch_seconds: dict[str, float] = field(default_factory=dict)  # cumulative, at the last epoch
    begun: dict[str, float] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    last_line: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {t.name: (i, t) for i, t in enumerate(self.tasks, 1)}

    def rate(self, family: str) -> float:
        """FLOP/s per worker: measured on ``family``; else its calibrated speed (:func:`calibrate`)
        scaled by how the measured families compare with theirs; else measured on all tasks so
        far; else the default."""
        if family not in self.work and family in self.calibrated:
            seen = [f for f in self.work if f in self.calibrated and self.work[f][1] > 0]
            load = (
                sum(self.work[f][0] / self.work[f][1] / self.calibrated[f] for f in seen) / len(seen) if seen else 1.0
            )
            return self.calibrated[family] * load
        measured = [self.work[family]] if family in self.work else list(self.work.values())
        flops, seconds = sum(m[0] for m in measured), sum(m[1] for m in measured)
        return flops / seconds if seconds > 0 else self.default_rate

    def _measured(self, family: str, flops: float, seconds: float) -> None:
        if seconds > 0:
            totals = self.work.setdefault(family, [0.0, 0.0])
            totals[0] += flops
            totals[1] += seconds

    def left_s(self, now: float | None = None) -> float:
        """Seconds until every task is done: the work left over the workers, or the longest task left."""
        now = time.monotonic() if now is None else now
        lefts = []
        for task in self.tasks:
            if task.name in self.finished:
                continue
            share = 1 - self.done_epochs.get(task.name, 0) / task.epochs if task.epochs else 1
            left = task.flops * share / self.rate(task.family)
            if not task.epochs and task.name in self.begun:
                left = max(0.0, left - (now - self.begun[task.name]))
            lefts.append(left)
        return max(sum(lefts) / self.jobs, max(lefts, default=0.0))

    def _say(self, text: str) -> None:
        self.say(f"{text} [at {(time.monotonic() - self.start) / 60:.1f} min]")

    def _tag(self, name: str) -> str:
        return f"[{self.by_name[name][0]}/{len(self.tasks)}] {name}"

    def begin(self) -> None:
        kinds = ", ".join(f"{n} {family}" for family, n in Counter(t.family for t in self.tasks).items())
        self._say(
            f"grid: {len(self.tasks)} tasks ({kinds}) with {self.jobs} worker(s), "
            f"~{_minutes(self.left_s())} min (estimate)"
        )

    def started(self, task: Task) -> None:
        self.begun[task.name] = time.monotonic()
        self._say(f"{self._tag(task.name)}: {task.label}")

    def epoch(self, name: str, epoch: int, seconds: float) -> None:
        task = self.by_name[name][1]
        new_epochs = epoch - self.done_epochs.get(name, 0)
        new_seconds = seconds - self.epoch_seconds.get(name, 0.0)
        if new_epochs > 0:
            self._measured(task.family, task.flops / task.epochs * new_epochs, new_seconds)
        self.done_epochs[name], self.epoch_seconds[name] = epoch, seconds
        now = time.monotonic()
        if epoch < task.epochs and now - self.last_line.get(name, -1e9) < self.interval:
            return
        self.last_line[name] = now
        per_epoch = seconds / epoch
        self._say(
            f"{self._tag(name)}: epoch {epoch}/{task.epochs}, {per_epoch:.1f} s/epoch, "
            f"run ETA {(task.epochs - epoch) * per_epoch / 60:.1f} min, "
            f"grid ~{_minutes(self.left_s(now))} min left"
        )

    def done(self, name: str, seconds: float) -> None:
        task = self.by_name[name][1]
        if not task.epochs:  # a task without epochs is measured once done
            self._measured(task.family, task.flops, seconds)
        self.finished.add(name)
        self._say(f"{self._tag(name)}: done in {seconds / 60:.1f} min, grid ~{_minutes(self.left_s())} min left")

    def end(self) -> None:
        self._say(f"grid: done in {(time.monotonic() - self.start) / 60:.1f} min")
