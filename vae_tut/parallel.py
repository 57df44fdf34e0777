"""What the chapters need and the cache lacks, computed in worker processes, one single-thread worker per core by
default: small networks use a CPU's cores poorly from one process (Performance appendix)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import validation
from .data import TRAIN_SIZE
from .errors import ConfigError
from .estimate import EFFICIENCY, Progress, calibrate, matmul_rate, network_flops
from .experiments import RunConfig, cache_dir, grid, run
from .likelihood import BERNOULLI_MODELS, LIKELIHOOD_MODELS, estimate_likelihood, is_estimated, likelihood_settings
from .pool import Task, available_cores, run_here, run_in_workers
from .train import MONITOR_SIZE, resolve_device

TEST_SIZE = 10_000  # test images in either data set: a run's final evaluation


def training_task(name: str, config: RunConfig, *, device: str | None = None, retrain: bool = False) -> Task:
    """Train (or load) ``config``'s run with :func:`vae_tut.experiments.run`, reporting its epochs."""
    step, forward, _ = network_flops(config.arch, config.z, config.kind, config.hidden)
    flops = config.epochs * (step * (config.train_size or TRAIN_SIZE) + forward * MONITOR_SIZE) + forward * TEST_SIZE
    family, kwargs = f"{config.arch} training", {"device": device, "progress": False, "retrain": retrain}
    return Task(name, config.label(), run, (config,), kwargs, epochs=config.epochs, flops=flops, family=family)


def likelihood_task(name: str, config: RunConfig, *, device: str | None = None, after: tuple[str, ...] = ()) -> Task:
    """Chapter 10's estimates of ``config``'s run (:func:`vae_tut.likelihood.estimate_likelihood`)."""
    _, forward, decode = network_flops(config.arch, config.z, config.kind, config.hidden)
    settings = likelihood_settings()
    decodes = max(settings["ks"]) + settings["elbo_samples"]  # per image; the encoder runs twice
    flops = settings["n_images"] * (2 * forward + decodes * decode)
    family, kwargs = f"{config.arch} likelihood", {"device": device}
    fn = estimate_likelihood
    return Task(f"likelihood {name}", config.label(), fn, (config,), kwargs, flops=flops, family=family, after=after)


def missing_tasks(only: str | None = None, *, device: str | None = None, retrain: bool = False) -> list[Task]:
    """What the cache lacks, longest first: the runs of grid ``only`` (all with ``retrain``), each config once; for the
    whole grid (``None``) also chapters 5 and 10's likelihood estimates, each after the training of its run."""
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


def run_tasks(
    tasks: list[Task],
    jobs: int,
    *,
    say: Callable[[str], None] = print,
    interval: float = 30.0,
    default_rate: float | None = None,
) -> None:
    """Run ``tasks`` in ``jobs`` workers sharing the cores (here when ``jobs`` or the work is 1), printing progress with
    ``say``; ``default_rate`` (FLOP/s per worker before any is measured) defaults to speeds timed here."""
    jobs = min(validation.whole(jobs, "jobs", 1), max(1, len(tasks)))
    names = {t.name for t in tasks}
    if len(names) < len(tasks):
        raise ConfigError("tasks need distinct names")
    if unknown := sorted({name for t in tasks for name in t.after} - names):
        raise ConfigError(f"tasks wait for tasks not given: {', '.join(unknown)}")
    if not tasks:
        say("grid: nothing to compute, the cache holds it all")
        return
    threads = torch.get_num_threads() if jobs == 1 else max(1, available_cores() // jobs)
    rate = EFFICIENCY * matmul_rate(threads) if default_rate is None else default_rate
    progress = Progress(tasks, jobs, say, interval, rate, calibrate(tasks, threads) if default_rate is None else {})
    progress.begin()
    if jobs == 1:
        run_here(tasks, progress)
    else:
        run_in_workers(tasks, jobs, threads, progress)
    progress.end()
