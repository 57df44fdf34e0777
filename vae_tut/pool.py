"""Run :class:`Task` objects that may wait for each other, in spawned worker processes or in this one (Performance
appendix). An error, Ctrl-C or ``kill`` ends every worker at once; a worker ends with its parent, even after kill -9."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, VaeTutError

if TYPE_CHECKING:
    from .estimate import Progress  # hears of the tasks' starts, epochs and ends, and prints them

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends
PARENT_CHECK_S = 0.5  # how often a worker checks that its parent is still there


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Task:
    """``fn(*args, **kwargs)``, ``fn`` picklable, given ``on_epoch`` (a history row callback) if ``epochs > 0``;
    ``flops`` and ``family`` price it (:mod:`vae_tut.estimate`), ``after`` names the tasks it waits for."""

    name: str
    label: str
    fn: Callable[..., object]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    flops: float = 0.0
    family: str = ""
    after: tuple[str, ...] = ()


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (the cause of the error raised here)."""


def _execute(task: Task, report: Callable[[tuple], None]) -> float:
    """Run ``task``, passing its epochs to ``report`` as ``("epoch", name, epoch, seconds)``; the seconds it took."""
    started = time.perf_counter()
    kwargs = dict(task.kwargs)
    if task.epochs:
        kwargs["on_epoch"] = lambda row: report(("epoch", task.name, row["epoch"], row["seconds"]))
    task.fn(*task.args, **kwargs)
    return time.perf_counter() - started


def _watch_parent(parent: int) -> None:
    """End this process at once (no clean-up: nobody waits for it) when ``parent`` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


_events: Any = None  # in a worker: the queue its tasks report on


def _init_worker(events: Any, threads: int, parent: int) -> None:
    """A worker's start: Ctrl-C left to the main process, ``threads`` torch threads, and an end with ``parent``."""
    global _events
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no libc to ask: the thread below still checks
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    # tqdm's default lock is a semaphore that a terminated worker would leak; a spawned worker shares it with nobody
    tqdm.set_lock(threading.RLock())
    _events = events


def _run_in_worker(task: Task) -> None:
    """Run ``task`` in a worker, putting its epochs, then its end or its error, on the events queue."""
    try:
        _events.put(("done", task.name, _execute(task, _events.put)))
    except BaseException as err:  # noqa: BLE001 - every error goes to the main process
        text = traceback.format_exc()
        try:  # the error itself where it survives pickling, else its name and message
            err = pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001 - any pickling failure means the same thing
            err = RuntimeError(f"{type(err).__name__}: {err}")
        _events.put(("error", task.name, err, text))


@contextlib.contextmanager
def _handling(signum: int, handler: Any) -> Iterator[None]:
    """``handler`` for ``signum`` meanwhile (in the main thread only: elsewhere Python sets no handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, default if previous is None else previous)


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """Meanwhile SIGTERM (``kill PID``) raises ``KeyboardInterrupt`` here, as Ctrl-C does, so the workers stop alike."""
    return _handling(signal.SIGTERM, signal.default_int_handler)


def _next_ready(pending: list[Task], done: set[str]) -> Task | None:
    for i, task in enumerate(pending):
        if all(name in done for name in task.after):
            return pending.pop(i)
    return None


def run_here(tasks: list[Task], listener: Progress) -> None:
    """Run ``tasks`` in this process, in order, each once its ``after`` tasks are done."""
    pending, done = list(tasks), set[str]()
    while pending:
        task = _next_ready(pending, done)
        if task is None:
            raise ConfigError("the tasks wait for each other")
        listener.started(task)
        listener.done(task.name, _execute(task, lambda event: listener.epoch(*event[1:])))
        done.add(task.name)


def _check_futures(running: dict[str, Future], workers: dict[int, Any]) -> None:
    """Raise what a running task's future holds: a task that could not be sent, or a worker that died."""
    for future in running.values():
        if future.done() and not future.cancelled() and (err := future.exception()) is not None:
            if not isinstance(err, BrokenExecutor):
                raise err
            codes = [p.exitcode for p in workers.values() if p.exitcode not in (None, 0)]
            first = next((c for c in codes if c != -signal.SIGTERM), codes[0] if codes else None)
            code = "" if first is None else f" (exit code {first})"
            tasks = ", ".join(sorted(running))
            raise VaeTutError(f"a worker process ended unexpectedly{code} while running {tasks}") from None


def run_in_workers(tasks: list[Task], jobs: int, threads: int, listener: Progress) -> None:
    """Run ``tasks`` in order in ``jobs`` spawned workers of ``threads`` torch threads, as their ``after`` allow."""
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(events, threads, os.getpid()))
    workers: dict[int, Any] = {}  # pid -> process, kept past the pool's own bookkeeping
    pending, running, done = list(tasks), dict[str, Future](), set[str]()
    try:
        while pending or running:
            while len(running) < jobs and (task := _next_ready(pending, done)) is not None:
                with _handling(signal.SIGINT, signal.SIG_IGN):  # a worker spawned now ignores Ctrl-C from its start
                    running[task.name] = pool.submit(_run_in_worker, task)
                workers.update(getattr(pool, "_processes", None) or {})
                listener.started(task)
            if not running:
                raise ConfigError("the tasks wait for each other")
            try:
                kind, name, *rest = events.get(timeout=1.0)
            except queue.Empty:
                _check_futures(running, workers)
                continue
            if kind == "epoch":
                listener.epoch(name, *rest)
            elif kind == "done":
                del running[name]
                done.add(name)
                listener.done(name, *rest)
            else:
                raise rest[0] from RemoteTraceback(rest[1])  # the error, then the worker's traceback
        pool.shutdown(wait=True)
    except BaseException:  # terminate every worker now: a running task's finished epochs stay in its checkpoint
        for process in workers.values():
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        for process in workers.values():
            process.join()
        raise
    finally:
        events.close()
        events.join_thread()
