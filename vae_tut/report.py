"""How the chapters print results: Markdown tables (``tabulate``), the quick-mode banner, wrapped labels."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from .experiments import QUICK_EPOCHS, QUICK_TRAIN_SIZE, REPORT, Run, quick_mode


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "", quick: bool | None = None
) -> str:
    """A Markdown table of formatted cells, with an optional note and the :func:`quick_banner` above it."""
    cells = [[str(cell) for cell in row] for row in rows]
    text = tabulate(cells, list(headers), tablefmt="github", disable_numparse=True)
    above = " ".join(part for part in (quick_banner(quick=quick), note) if part)
    return f"{above}\n\n{text}" if above else text


def show_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> None:
    """Display :func:`markdown_table` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(headers, rows, note)))


def quick_banner(what: str = "", quick: bool | None = None) -> str:
    """``**QUICK MODE**: ...`` when ``quick`` (default: quick mode, ``$VAE_TUT_QUICK=1``) is on, else ``""``."""
    if not (quick_mode() if quick is None else quick):
        return ""
    extra = f"; {what}" if what else ""
    epochs = f"{QUICK_EPOCHS} epoch{'s' * (QUICK_EPOCHS != 1)}"
    return (
        f"**QUICK MODE**: models trained {epochs} on {QUICK_TRAIN_SIZE:,} images{extra}; "
        "smoke tests, not comparable with the report."
    )


def quick_tag() -> str:
    """`` [QUICK MODE]`` for figure titles when quick mode is on, else an empty string."""
    return " [QUICK MODE]" if quick_mode() else ""


def wrap(label: str, width: int = 28) -> str:
    """``label`` broken into lines of at most ``width`` characters, for small panel titles."""
    return "\n".join(textwrap.wrap(label, width))


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def results_table(runs: dict[str, Run]) -> str:
    """Markdown table of runs (appendix, ``reproduce``): the report's final training loss beside this book's."""
    rows = []
    for name, r in runs.items():
        ref = REPORT.get(name, {}).get("total")
        diff = "—" if ref is None else f"{100 * (r.train['total'] - ref) / ref:+.1f} %"
        train, test = ([_fmt(split[k]) for k in ("recon", "kl", "total")] for split in (r.train, r.test))
        rows.append([name, r.config.precision, _fmt(ref), *train, diff, *test, f"{r.seconds:.0f}"])
    headers = ["run", "precision", "report train total", "train recon", "train KL", "train total"]
    headers += ["difference to report", "test recon", "test KL", "test total", "seconds"]
    return markdown_table(headers, rows, quick=any(r.config.is_quick for r in runs.values())) + "\n"
