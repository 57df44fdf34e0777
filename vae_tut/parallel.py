"""The report's grid in worker processes: ``python -m vae_tut reproduce --jobs N`` (Performance appendix).

Small networks use a CPU's cores poorly from one process: two single-thread
trainings side by side finish more epochs per minute than one two-thread
training. So the grid's missing runs are shared out to ``N`` worker processes
(default: one per core, one thread each), longest first. Each worker trains
through :func:`vae_tut.experiments.run`, whose cache entries are written
atomically under a lock, and reports every finished epoch; this process prints
one line per run and epoch (at most one every ``interval`` seconds per run)
with the run's speed and the time left. Chapter 10's likelihood estimates are
shared out the same way once their runs exist.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import torch

from .errors import ConfigError


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
    """One unit of work: train a run (``kind="train"``) or estimate its likelihood."""

    name: str
    config: Any  # a resolved RunConfig
    kind: str = "train"
    retrain: bool = False

    @property
    def epochs(self) -> int:
        return self.config.epochs if self.kind == "train" else 0


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _do(task: Task, device: str | None, events: Any) -> tuple[str, float]:
    """Run one task (in a worker or in this process); its name and seconds."""
    started = time.perf_counter()
    if task.kind == "train":
        from .experiments import run

        run(task.config, device=device, progress=False, retrain=task.retrain,
            on_epoch=lambda row: events.put((task.name, row["epoch"], row["seconds"])))
    else:
        from .evaluate import estimate_likelihood

        estimate_likelihood(task.config, device=device)
    return task.name, time.perf_counter() - started


@dataclass
class _Progress:
    """Prints the progress lines and estimates the time left from the speeds seen so far."""

    tasks: list[Task]
    jobs: int
    say: Callable[[str], None]
    interval: float
    index: dict[str, int] = field(default_factory=dict)
    done_epochs: dict[str, int] = field(default_factory=dict)
    rate: dict[str, float] = field(default_factory=dict)  # seconds per epoch, by architecture
    last_line: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {t.name: i for i, t in enumerate(self.tasks, 1)}

    def _tag(self, name: str) -> str:
        return f"[{self.index[name]}/{len(self.tasks)}] {name}"

    def _left_s(self) -> float | None:
        if not self.rate:
            return None
        fallback = sum(self.rate.values()) / len(self.rate)
        work = sum((t.epochs - self.done_epochs.get(t.name, 0)) * self.rate.get(t.config.arch, fallback)
                   for t in self.tasks)
        return work / self.jobs

    def started(self, task: Task) -> None:
        self.say(f"{self._tag(task.name)}: {task.config.label()}")

    def epoch(self, name: str, epoch: int, seconds: float) -> None:
        task = self.tasks[self.index[name] - 1]
        self.done_epochs[name] = epoch
        per_epoch = seconds / epoch
        self.rate[task.config.arch] = per_epoch
        now = time.monotonic()
        if epoch < task.epochs and now - self.last_line.get(name, -1e9) < self.interval:
            return
        self.last_line[name] = now
        run_left = (task.epochs - epoch) * per_epoch / 60
        left = self._left_s()
        grid_left = "" if left is None else f", grid ~{left / 60:.0f} min left"
        self.say(f"{self._tag(name)}: epoch {epoch}/{task.epochs}, {per_epoch:.1f} s/epoch, "
                 f"run ETA {run_left:.1f} min{grid_left}")

    def finished(self, name: str, seconds: float) -> None:
        self.say(f"{self._tag(name)}: done in {seconds / 60:.1f} min")


def run_tasks(tasks: list[Task], jobs: int, *, device: str | None = None,
              say: Callable[[str], None] = print, interval: float = 30.0) -> None:
    """Run ``tasks`` in ``jobs`` worker processes (in this process when ``jobs`` or the work is 1).

    Each worker gets an equal share of the cores as threads. Tasks are expected
    sorted longest first. An error in a task stops the others and is raised here.
    """
    jobs = min(check_jobs(jobs), max(1, len(tasks)))
    progress = _Progress(tasks, jobs, say, interval)
    if not tasks:
        return
    if jobs == 1:
        events = SimpleNamespace(put=lambda event: progress.epoch(*event))
        for task in tasks:
            progress.started(task)
            progress.finished(*_do(task, device, events))
        return

    threads = max(1, available_cores() // jobs)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            pending: dict[Future, Task] = {}
            try:
                for task in tasks:
                    pending[pool.submit(_do, task, device, events)] = task
                    if len(pending) <= jobs:
                        progress.started(task)
                waiting = list(pending)
                announced = jobs
                while waiting:
                    finished, _ = wait(waiting, timeout=1.0, return_when=FIRST_COMPLETED)
                    _drain(events, progress)
                    for fut in finished:
                        waiting.remove(fut)
                        progress.finished(*fut.result())
                        if announced < len(tasks):
                            progress.started(tasks[announced])
                            announced += 1
                _drain(events, progress)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def _drain(events: Any, progress: _Progress) -> None:
    while True:
        try:
            progress.epoch(*events.get_nowait())
        except queue_module.Empty:
            return
