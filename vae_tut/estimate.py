"""How long the grid's tasks take: FLOPs (:func:`network_flops`) over the speed measured so far or, before any, timed
here (:func:`calibrate`); :class:`Progress` prints the progress lines (Performance appendix)."""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from .evaluate import log_importance_weights
from .experiments import RunConfig
from .losses import vae_loss
from .models import MLP_HIDDEN, build_model
from .pool import Task
from .train import autocast, forward, has_convolutions, make_optimizer, resolve_device

EFFICIENCY = 0.3  # a task's speed before any is measured: training reaches 0.2-0.4 of a matrix product's


@functools.cache
def network_flops(arch: str, z: int, kind: str = "vae", hidden: int = MLP_HIDDEN) -> tuple[float, float, float]:
    """FLOPs per image of a training step, an evaluation pass and one decoding (``FlopCounterMode``: a lower bound)."""
    batch = 4
    model = build_model(arch, z, kind, hidden)
    extra = (torch.zeros(batch, dtype=torch.long),) if getattr(model, "n_classes", 0) else ()
    x = torch.rand(batch, 1, 28, 28)
    with FlopCounterMode(display=False) as training:
        model.train()(x, *extra).logits.sum().backward()
    with torch.no_grad():
        with FlopCounterMode(display=False) as evaluation:
            model.eval()(x, *extra)
        with FlopCounterMode(display=False) as decoding:
            model.decode(torch.zeros(batch, z), *extra)  # type: ignore[operator]
    return training.get_total_flops() / batch, evaluation.get_total_flops() / batch, decoding.get_total_flops() / batch


def _timed(step: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    for phase in ("warm-up", "timed"):  # seconds per call of ``step``, timed over ``repeats`` calls after one warm-up
        started = time.perf_counter()
        for _ in range(1 if phase == "warm-up" else repeats):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def _task_rate(task: Task, config: RunConfig) -> float:
    """FLOP/s of ``task``'s network here: training steps on a batch, or the importance-sampling estimator."""
    device = resolve_device(task.kwargs.get("device"))
    model = build_model(config.arch, config.z, config.kind, config.hidden).to(device)
    if has_convolutions(model):
        model.to(memory_format=torch.channels_last)
    step_flops, forward_flops, decode_flops = network_flops(config.arch, config.z, config.kind, config.hidden)
    if not task.epochs:  # the estimator itself, on 2 images with 250 samples each
        images, k = torch.rand(2, 1, 28, 28), 250
        seconds = _timed(lambda: log_importance_weights(model, images, 0.05, k), device)  # type: ignore[arg-type]
        return len(images) * (forward_flops + k * decode_flops) / seconds
    n = config.batch_size
    x = torch.rand(n, 1, 28, 28, device=device)
    labels = torch.zeros(n, dtype=torch.long, device=device) if config.kind == "cvae" else None
    optimizer = make_optimizer(model, config.lr or 1e-3, device)

    def step() -> None:
        with autocast(device, config.precision or "fp32"):
            out = forward(model, x, labels)
        vae_loss(x, out.logits, out.mean, out.var, config.c).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step_flops * n / _timed(step, device)


def calibrate(tasks: list[Task], threads: int) -> dict[str, float]:
    """FLOP/s per worker of each family of ``tasks``, timed here on its first task's network on ``threads`` threads."""
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
    """FLOP/s of an ``n x n`` matrix product (best of ``repeats``) on ``threads`` threads (Performance appendix)."""
    a, best = torch.rand(n, n).to(dtype), math.inf
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a @ a  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 / max(best, 1e-9)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}" if seconds >= 600 else f"{seconds / 60:.1f}"


@dataclass
class Progress:
    """Prints the progress lines of :func:`vae_tut.parallel.run_tasks`, pricing the work left at the speeds so far."""

    tasks: list[Task]
    jobs: int
    say: Callable[[str], None]
    interval: float  # seconds between a run's epoch lines (its last epoch always has one)
    default_rate: float  # FLOP/s per worker until a speed is measured
    calibrated: dict[str, float] = field(default_factory=dict)  # family -> FLOP/s timed before the start
    start: float = field(default_factory=time.monotonic)
    work: dict[str, list[float]] = field(default_factory=dict)  # family -> [FLOPs, seconds] measured
    reported: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> last epoch, its seconds
    begun: dict[str, float] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    last_line: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {t.name: (i, t) for i, t in enumerate(self.tasks, 1)}

    def rate(self, family: str) -> float:
        """FLOP/s per worker: measured on ``family``; else its calibrated speed scaled as the measured
        families compare with theirs; else measured on all tasks so far; else the default."""
        if family not in self.work and family in self.calibrated:
            loads = [fl / s / self.calibrated[fam] for fam, (fl, s) in self.work.items() if fam in self.calibrated]
            return self.calibrated[family] * (sum(loads) / len(loads) if loads else 1.0)
        measured = [self.work[family]] if family in self.work else list(self.work.values())
        seconds = sum(s for _, s in measured)
        return sum(f for f, _ in measured) / seconds if seconds > 0 else self.default_rate

    def _measured(self, family: str, flops: float, seconds: float) -> None:
        if seconds > 0:
            flops_so_far, seconds_so_far = self.work.get(family, (0.0, 0.0))
            self.work[family] = [flops_so_far + flops, seconds_so_far + seconds]

    def left_s(self) -> float:
        """Seconds until every task is done: the work left over the workers, or the longest task left."""
        lefts = []
        for task in self.tasks:
            if task.name not in self.finished:
                share = 1 - self.reported.get(task.name, (0, 0.0))[0] / task.epochs if task.epochs else 1
                left = task.flops * share / self.rate(task.family)
                if not task.epochs and task.name in self.begun:
                    left = max(0.0, left - (time.monotonic() - self.begun[task.name]))
                lefts.append(left)
        return max(sum(lefts) / self.jobs, max(lefts, default=0.0))

    def _say(self, name: str, text: str, grid_left: bool = False) -> None:
        tag = f"[{self.by_name[name][0]}/{len(self.tasks)}] {name}" if name else "grid"
        left = f", grid ~{_minutes(self.left_s())} min left" if grid_left else ""
        self.say(f"{tag}: {text}{left} [at {(time.monotonic() - self.start) / 60:.1f} min]")

    def begin(self) -> None:
        kinds = ", ".join(f"{n} {family}" for family, n in Counter(t.family for t in self.tasks).items())
        left = _minutes(self.left_s())
        self._say("", f"{len(self.tasks)} tasks ({kinds}) with {self.jobs} worker(s), ~{left} min (estimate)")

    def started(self, task: Task) -> None:
        self.begun[task.name] = time.monotonic()
        self._say(task.name, task.label)

    def epoch(self, name: str, epoch: int, seconds: float) -> None:
        task = self.by_name[name][1]
        last_epoch, last_seconds = self.reported.get(name, (0, 0.0))
        if epoch > last_epoch:
            self._measured(task.family, task.flops / task.epochs * (epoch - last_epoch), seconds - last_seconds)
        self.reported[name] = (epoch, seconds)
        now = time.monotonic()
        if epoch < task.epochs and now - self.last_line.get(name, -math.inf) < self.interval:
            return
        self.last_line[name] = now
        per_epoch = seconds / epoch
        eta = (task.epochs - epoch) * per_epoch / 60
        self._say(name, f"epoch {epoch}/{task.epochs}, {per_epoch:.1f} s/epoch, run ETA {eta:.1f} min", True)

    def done(self, name: str, seconds: float) -> None:
        task = self.by_name[name][1]
        if not task.epochs:  # a task without epochs is measured once done
            self._measured(task.family, task.flops, seconds)
        self.finished.add(name)
        self._say(name, f"done in {seconds / 60:.1f} min", True)

    def end(self) -> None:
        self._say("", f"done in {(time.monotonic() - self.start) / 60:.1f} min")
