"""Worker processes for a list of tasks that may wait for each other (Performance appendix).

:func:`run_in_workers` shares :class:`Task` objects out to a
``concurrent.futures.ProcessPoolExecutor`` of spawned processes, each on
``threads`` torch threads, starting a task once the tasks it waits for are done;
:func:`run_here` runs them in this process. Each task's epochs, its end and its
error reach a :class:`Listener` (:class:`vae_tut.estimate.Progress` prints them).

Stopping is the main process's job, and it is thorough:

- an error in a task terminates the other workers at once and is raised here,
  with the worker's traceback as its cause;
- workers ignore Ctrl-C: the main process terminates them and raises ``KeyboardInterrupt``
  (:func:`sigterm_as_interrupt` makes ``kill PID`` do the same);
- a worker ends when its parent does, even one killed with ``kill -9`` or by the
  out-of-memory killer: Linux's parent-death signal, and a thread that checks
  the parent every half second (:func:`_die_with_parent`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ConfigError, VaeTutError

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends
PARENT_CHECK_S = 0.5  # how often a worker checks that its parent is still there


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
    it (:mod:`vae_tut.estimate`); ``after`` names the tasks that must finish before it starts.
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


class Listener(Protocol):
    """What the pool tells as the tasks run (:class:`vae_tut.estimate.Progress` prints it)."""

    def started(self, task: Task) -> None: ...

    def epoch(self, name: str, epoch: int, seconds: float) -> None: ...

    def done(self, name: str, seconds: float) -> None: ...


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (the cause of the error raised here)."""

    def __str__(self) -> str:
        return self.args[0]


def _execute(task: Task, report: Callable[[tuple], None]) -> float:
    """Run ``task``, passing its epochs to ``report`` as ``("epoch", name, epoch, seconds)``; the seconds it took."""
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


# ---------------------------------------------------------------- in a worker process


def _watch_parent(parent: int) -> None:
    """End this process at once (no clean-up: nobody waits for it) when ``parent`` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` ends, however it ends: on Linux the kernel sends
    SIGTERM (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread polls ``os.getppid()``."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no libc to ask: the thread below still checks
            pass
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


_events: Any = None  # in a worker: the queue its tasks report on


def _init_worker(events: Any, threads: int, parent: int) -> None:
    """A worker's start: Ctrl-C left to the main process, death with the parent, ``threads`` torch threads."""
    global _events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _die_with_parent(parent)
    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    # tqdm's default lock holds a multiprocessing semaphore that a terminated worker never
    # releases (Python then warns of a leaked semaphore); a spawned worker shares it with nobody
    tqdm.set_lock(threading.RLock())
    _events = events


def _run_in_worker(task: Task) -> None:
    """Run ``task`` in a worker, reporting its epochs, then ``("done", name, seconds)`` or
    ``("error", name, error, traceback)``, on the events queue (in that order: one queue keeps it)."""
    try:
        _events.put(("done", task.name, _execute(task, _events.put)))
    except BaseException as err:  # noqa: BLE001 - every error goes to the main process
        _events.put(("error", task.name, _portable(err), traceback.format_exc()))


# ---------------------------------------------------------------- in the main process


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


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Meanwhile SIGTERM (``kill PID``) raises ``KeyboardInterrupt`` in this process, as Ctrl-C does,
    so the workers are stopped the same way (nothing changes outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _next_ready(pending: list[Task], done: set[str]) -> Task | None:
    """Take the first task of ``pending`` whose ``after`` tasks are all done."""
    for i, task in enumerate(pending):
        if all(name in done for name in task.after):
            return pending.pop(i)
    return None


def run_here(tasks: list[Task], listener: Listener) -> None:
    """Run ``tasks`` in this process, in order, each once its ``after`` tasks are done."""
    pending, done = list(tasks), set[str]()
    while pending:
        task = _next_ready(pending, done)
        if task is None:
            raise ConfigError("the tasks wait for each other")
        listener.started(task)
        listener.done(task.name, _execute(task, lambda event: listener.epoch(*event[1:])))
        done.add(task.name)


def _ended_unexpectedly(workers: dict[int, Any], running: dict[str, Future]) -> VaeTutError:
    """The one-line error for a worker that died (killed, out of memory) while ``running`` ran."""
    codes = [p.exitcode for p in workers.values() if p.exitcode not in (None, 0)]
    first = next((c for c in codes if c != -signal.SIGTERM), codes[0] if codes else None)
    code = "" if first is None else f" (exit code {first})"
    return VaeTutError(f"a worker process ended unexpectedly{code} while running {', '.join(sorted(running))}")


def _check_futures(running: dict[str, Future], workers: dict[int, Any]) -> None:
    """Raise what a running task's future holds: a dead worker, or a task that could not be sent."""
    for future in running.values():
        if future.done() and not future.cancelled() and (err := future.exception()) is not None:
            if isinstance(err, BrokenProcessPool):
                raise _ended_unexpectedly(workers, running) from None
            raise err


def _stop(pool: ProcessPoolExecutor, workers: dict[int, Any]) -> None:
    """Terminate every worker now (a running task's finished epochs stay in its resume checkpoint),
    cancel what has not started, and wait until the pool's processes and threads are gone."""
    for process in workers.values():
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    for process in workers.values():
        process.join()


def run_in_workers(tasks: list[Task], jobs: int, threads: int, listener: Listener) -> None:
    """Run ``tasks`` in ``jobs`` spawned worker processes of ``threads`` torch threads each.

    At most ``jobs`` tasks are handed out at a time, in the order given, each once its
    ``after`` tasks are done, so a task is only ever queued for an idle worker. The first
    error ends everything (see the module's docstring).
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(events, threads, os.getpid())
    )
    workers: dict[int, Any] = {}  # pid -> process, kept past the pool's own bookkeeping
    pending, running, done = list(tasks), dict[str, Future](), set[str]()
    try:
        while pending or running:
            while len(running) < jobs and (task := _next_ready(pending, done)) is not None:
                with _sigint_ignored():  # a worker spawned now ignores Ctrl-C from its start
                    running[task.name] = pool.submit(_run_in_worker, task)
                workers.update(getattr(pool, "_processes", None) or {})
                listener.started(task)
            if not running:
                raise ConfigError("the tasks wait for each other")
            try:
                kind, name, *rest = events.get(timeout=1.0)
            except queue_module.Empty:
                _check_futures(running, workers)
                continue
            if kind == "epoch":
                listener.epoch(name, *rest)
            elif kind == "done":
                del running[name]
                done.add(name)
                listener.done(name, *rest)
            else:
                error, text = rest
                raise error from RemoteTraceback(text)
        pool.shutdown(wait=True)
    except BaseException:
        _stop(pool, workers)
        raise
    finally:
        events.close()
        events.join_thread()
