"""Before any notebook executes, compute what the chapters will read (as `make book` does).

``jupyter-book build .`` does what ``make book`` does.

On ``builder-inited`` (Sphinx reads, and myst-nb executes, the notebooks later)
this extension asks :func:`vae_tut.parallel.missing_tasks` which runs of the
report's grid and which likelihood estimates of chapters 5 and 10 the run cache
lacks and, if any, computes them with :func:`vae_tut.parallel.run_tasks`: the
same worker processes (:mod:`vae_tut.pool`: they end with the build, however it
ends), order and progress lines as ``python -m vae_tut reproduce`` (one worker per
core). A fresh clone's build therefore never trains inside the notebooks one run
at a time, and the chapters only read the cache.

It does nothing when the cache holds everything, when notebooks are not executed
(``execute_notebooks: off``), or in quick mode (``VAE_TUT_QUICK=1``: there each
chapter trains its few small runs in seconds).
"""

from __future__ import annotations

from collections.abc import Callable

from sphinx.application import Sphinx
from sphinx.util import logging

from vae_tut import parallel
from vae_tut.experiments import quick_mode

logger = logging.getLogger(__name__)


def train_missing(execution_mode: str, say: Callable[[str], None] = print) -> list[parallel.Task]:
    """Compute what the cache lacks (nothing in quick mode or without execution); the tasks run."""
    if quick_mode() or execution_mode == "off":
        return []
    tasks = parallel.missing_tasks()
    if tasks:
        parallel.run_tasks(tasks, parallel.available_cores(), say=say)
    return tasks


def _builder_inited(app: Sphinx) -> None:
    train_missing(getattr(app.config, "nb_execution_mode", "auto"), say=logger.info)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
