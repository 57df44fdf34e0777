"""The grid's missing work in worker processes, for ``python -m vae_tut reproduce`` and the book build
(Performance appendix).

Small networks use a CPU's cores poorly from one process: two single-thread
trainings side by side finish more epochs per minute than one two-thread
training. So what the chapters need and the cache lacks (:func:`missing_tasks`:
the grid's runs, then chapters 5 and 10's likelihood estimates, each after the
training of its run) is shared out to ``N`` worker processes (default: one per
core, one thread each), longest first (:func:`run_tasks`). Cache entries are
written atomically under a lock (:mod:`vae_tut.store`). This process prints the
grid's estimated time, then one line per task started, per epoch (at most one
every ``interval`` seconds per run) and per task done, each ending with the
time since the start, ``[at 12.3 min]``, so a log shows how good the estimates
were (:func:`forecasts`).

The time left is priced in arithmetic, known before a task starts: its
floating-point operations (:func:`network_flops`, counted by torch's FLOP counter
on one small batch) divided by the speed, in FLOP/s per worker, measured on the
epochs finished so far (of the same kind of task once one has run, else of any);
before the first epoch, the speed of each kind of task timed here on a batch of its network
(:func:`calibrate`), corrected by what the first finished epochs show.

An error in a task terminates the other workers at once and is raised here.
Workers ignore Ctrl-C: the main process stops them and raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import queue as queue_module
import re
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from .data import TRAIN_SIZE
from .errors import ConfigError, VaeTutError
from .experiments import RunConfig, cache_dir, grid, run
from .likelihood import BERNOULLI_MODELS, LIKELIHOOD_MODELS, estimate_likelihood, is_estimated, likelihood_settings
from .models import MLP_HIDDEN
from .train import MONITOR_SIZE, resolve_device

TEST_SIZE = 10_000  # test images in either data set: a run's final evaluation
# Training reaches about 0.2-0.4 of a single-thread matrix product's speed (Performance
# appendix), so before any epoch has finished a task is priced at this fraction of it.
EFFICIENCY = 0.3


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def check_jobs(jobs: object) -> int:
    """Return ``jobs`` if it is a whole number >= 1, else raise :class:`ConfigError`."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a whole number >= 1, got {jobs!r}")
    return jobs


@dataclass
class Task:
    """One unit of work: ``fn(*args, **kwargs)``, ``fn`` a top-level (picklable) function.

    With ``epochs > 0`` the task reports its epochs: ``fn`` also gets ``on_epoch``,
    called with each finished epoch's history row (``epoch`` and cumulative
    ``seconds``), as :func:`vae_tut.experiments.run` calls it. ``flops`` is the
    task's arithmetic and ``family`` the kind of work whose measured speed prices
    it; ``after`` names the tasks that must finish before it starts.
    """

    name: str
    label: str
    fn: Callable[..., object]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    flops: float = 0.0
    family: str = ""
    after: tuple[str, ...] = ()


# ---------------------------------------------------------------- what the grid costs


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


def training_task(name: str, config: RunConfig, *, device: str | None = None, retrain: bool = False) -> Task:
    """Train (or load) ``config``'s run with :func:`vae_tut.experiments.run`, reporting its epochs."""
    step, forward, _ = network_flops(config.arch, config.z, config.kind, config.hidden)
    images = min(config.train_size or TRAIN_SIZE, TRAIN_SIZE)
    flops = config.epochs * (step * images + forward * MONITOR_SIZE) + forward * TEST_SIZE
    return Task(
        name,
        config.label(),
        run,
        (config,),
        {"device": device, "progress": False, "retrain": retrain},
        epochs=config.epochs,
        flops=flops,
        family=f"{config.arch} training",
    )


def likelihood_task(name: str, config: RunConfig, *, device: str | None = None, after: tuple[str, ...] = ()) -> Task:
    """Chapter 10's estimates of ``config``'s run (:func:`vae_tut.likelihood.estimate_likelihood`)."""
    _, forward, decode = network_flops(config.arch, config.z, config.kind, config.hidden)
    settings = likelihood_settings()
    decodes = max(settings["ks"]) + settings["elbo_samples"]  # per image; the encoder runs twice
    flops = settings["n_images"] * (2 * forward + decodes * decode)
    return Task(
        f"likelihood {name}",
        config.label(),
        estimate_likelihood,
        (config,),
        {"device": device},
        flops=flops,
        family=f"{config.arch} likelihood",
        after=after,
    )


def missing_tasks(only: str | None = None, *, device: str | None = None, retrain: bool = False) -> list[Task]:
    """What the chapters need and the cache lacks, longest first.

    The runs of grid ``only`` (``None``: all of it, :func:`vae_tut.experiments.grid`)
    not in the run cache (every one with ``retrain``), each distinct config once under
    its first name; for the whole grid also the likelihood estimates of chapters 5 and
    10 not in the cache, each after the training of its run when that is missing.
    """
    dev = resolve_device(device)
    training: dict[str, Task] = {}  # run cache key -> its task
    for name, config in grid(only).items():
        config = config.resolved(dev)
        key = config.key(dev)
        if key not in training and (retrain or not (cache_dir() / key).is_dir()):
            training[key] = training_task(name, config, device=device, retrain=retrain)
    tasks = list(training.values())
    if only is None:
        for name, config in {**LIKELIHOOD_MODELS, **BERNOULLI_MODELS}.items():
            config = config.resolved(dev)
            trainer = training.get(config.key(dev))
            if trainer is not None or not is_estimated(config, device):
                after = () if trainer is None else (trainer.name,)
                tasks.append(likelihood_task(name, config, device=device, after=after))
    return sorted(tasks, key=lambda t: -t.flops)


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

    What it cannot see, such as workers sharing memory bandwidth, :class:`_Progress` corrects by the
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


def matmul_rate(threads: int = 1, n: int = 512, repeats: int = 8) -> float:
    """FLOP/s of an ``n x n`` float32 matrix product on ``threads`` threads, timed here (milliseconds)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.rand(n, n)
        a @ a  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            a @ a
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    return repeats * 2 * n**3 / max(seconds, 1e-9)


# ---------------------------------------------------------------- progress and the time left


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}"


@dataclass
class _Progress:
    """Prints the progress lines and prices the work left at the speeds measured so far."""

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

    def event(self, event: tuple) -> None:
        """An event of a running task: ``("epoch", name, epoch, cumulative seconds)``."""
        kind, name, *rest = event
        if kind == "epoch":
            self.epoch(name, *rest)

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


_AT = re.compile(r"\[at ([\d.]+) min\]$")
_FORECAST = re.compile(r"~([\d.]+) min (?:\(estimate\)|left)")


def forecasts(log: str) -> tuple[list[tuple[float, float]], float | None]:
    """From a log of :func:`run_tasks`' lines: each forecast as (minute said, minute the grid
    would end) and the minute it did end (``None`` if it did not)."""
    said, end = [], None
    for line in log.splitlines():
        at, left = _AT.search(line), _FORECAST.search(line)
        if at and line.startswith("grid: done"):
            end = float(at.group(1))
        elif at and left:
            said.append((float(at.group(1)), float(at.group(1)) + float(left.group(1))))
    return said, end


# ---------------------------------------------------------------- running the tasks


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (the cause of the error raised here)."""

    def __str__(self) -> str:
        return self.args[0]


def _execute(task: Task, report: Callable[[tuple], None]) -> float:
    """Run ``task``, passing its epochs to ``report``; the seconds it took."""
    started = time.perf_counter()
    kwargs = dict(task.kwargs)
    if task.epochs:
        kwargs["on_epoch"] = lambda row: report(("epoch", task.name, row["epoch"], row["seconds"]))
    task.fn(*task.args, **kwargs)
    return time.perf_counter() - started


def _portable(err: BaseException) -> BaseException:
    """``err`` if it survives pickling (to travel to the main process), else a RuntimeError saying it."""
    try:
        return pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any pickling failure means the same thing
        return RuntimeError(f"{type(err).__name__}: {err}")


def _worker(todo: Any, events: Any, threads: int) -> None:
    """A worker process: runs the tasks it takes from ``todo`` until ``None``, reporting on ``events``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    torch.set_num_threads(threads)
    while (task := todo.get()) is not None:
        try:
            events.put(("done", task.name, _execute(task, events.put)))
        except BaseException as err:  # noqa: BLE001 - every error goes to the main process
            events.put(("error", task.name, _portable(err), traceback.format_exc()))
            return


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored in this process meanwhile, so processes started now ignore it from their start."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _next_ready(pending: list[Task], done: set[str]) -> Task | None:
    """Take the first task of ``pending`` whose ``after`` tasks are all done."""
    for i, task in enumerate(pending):
        if all(name in done for name in task.after):
            return pending.pop(i)
    return None


def _run_here(tasks: list[Task], progress: _Progress) -> None:
    pending, done = list(tasks), set[str]()
    while pending:
        task = _next_ready(pending, done)
        if task is None:
            raise ConfigError("the tasks wait for each other")
        progress.started(task)
        progress.done(task.name, _execute(task, progress.event))
        done.add(task.name)


def _run_in_workers(tasks: list[Task], jobs: int, threads: int, progress: _Progress) -> None:
    context = multiprocessing.get_context("spawn")
    todo, events = context.Queue(), context.Queue()
    with _sigint_ignored():
        workers = [context.Process(target=_worker, args=(todo, events, threads), daemon=True) for _ in range(jobs)]
        for worker in workers:
            worker.start()
    pending, running, done = list(tasks), set[str](), set[str]()
    try:
        while pending or running:
            while len(running) < jobs and (task := _next_ready(pending, done)) is not None:
                todo.put(task)
                running.add(task.name)
                progress.started(task)
            if not running:
                raise ConfigError("the tasks wait for each other")
            try:
                kind, name, *rest = events.get(timeout=1.0)
            except queue_module.Empty:
                ended = [w.exitcode for w in workers if w.exitcode is not None]
                if ended:
                    raise VaeTutError(
                        f"a worker process ended unexpectedly (exit code {ended[0]}) "
                        f"while running {', '.join(sorted(running))}"
                    ) from None
                continue
            if kind == "epoch":
                progress.epoch(name, *rest)
            elif kind == "done":
                running.discard(name)
                done.add(name)
                progress.done(name, *rest)
            else:
                error, text = rest
                raise error from RemoteTraceback(text)
        for _ in workers:
            todo.put(None)
        for worker in workers:
            worker.join()
    except BaseException:
        for worker in workers:  # the running tasks' finished epochs stay in their resume checkpoints
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join()
        for q in (todo, events):
            q.cancel_join_thread()
        raise
    finally:
        todo.close()
        events.close()


def run_tasks(
    tasks: list[Task],
    jobs: int,
    *,
    say: Callable[[str], None] = print,
    interval: float = 30.0,
    default_rate: float | None = None,
) -> None:
    """Run ``tasks`` in ``jobs`` worker processes (in this process when ``jobs`` or the work is 1).

    Each worker gets an equal share of the cores as threads. Tasks start in the
    order given (longest first, as :func:`missing_tasks` sorts them) once their
    ``after`` tasks are done. An error in a task terminates the workers and is
    raised here at once, as is ``KeyboardInterrupt``. ``default_rate`` (FLOP/s per
    worker before any is measured) defaults to each family's speed timed here (:func:`calibrate`),
    and to :data:`EFFICIENCY` of :func:`matmul_rate` for a task that is not a run's.
    """
    jobs = min(check_jobs(jobs), max(1, len(tasks)))
    names = {t.name for t in tasks}
    if len(names) < len(tasks):
        raise ConfigError("tasks need distinct names")
    unknown = sorted({name for t in tasks for name in t.after} - names)
    if unknown:
        raise ConfigError(f"tasks wait for tasks not given: {', '.join(unknown)}")
    if not tasks:
        say("grid: nothing to compute, the cache holds it all")
        return
    threads = torch.get_num_threads() if jobs == 1 else max(1, available_cores() // jobs)
    if default_rate is None:
        rate, calibrated = EFFICIENCY * matmul_rate(threads), calibrate(tasks, threads)
    else:
        rate, calibrated = default_rate, {}
    progress = _Progress(tasks, jobs, say, interval, rate, calibrated)
    progress.begin()
    if jobs == 1:
        _run_here(tasks, progress)
    else:
        _run_in_workers(tasks, jobs, threads, progress)
    progress.end()
