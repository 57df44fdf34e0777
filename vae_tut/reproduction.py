"""Which reading of the report's code reproduces the KL term it prints (reproduction appendix, chapter 5)? Each
candidate changes one thing in the base MLP run or reads another number off its history; it fits when its printed terms
lie within :class:`Tolerances` of the report's on both data sets (one run each: a misfit proves nothing more)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .data import load_dataset
from .experiments import BASE, REPORT, REPORT_KL, SEED_GRID, Run, run
from .train import average_loss

DATASETS = ("mnist", "fashion-mnist")
TERMS = ("recon", "kl")
K_SEED = 3.0  # about two standard deviations of the gap between two runs of one code (sqrt(2) seed spreads)
# Half a unit of the last digit the report prints: reconstruction 293 and 216, KL 14 and 13.4.
REPORT_ROUNDING = {"mnist": {"recon": 0.5, "kl": 0.5}, "fashion-mnist": {"recon": 0.5, "kl": 0.05}}
LAST_BATCH = "last-batch"
# label -> suffix of the REPORT_KL run name ("" is the book's own run, "last-batch" reads its history)
CANDIDATES = {
    "none: the book's run": "",
    "(a) c = 0.01": "c0.01",
    "(a) c = 0.025": "c0.025",
    "(b) variance read as a standard deviation in the KL": "kl-var-as-std",
    "(b) variance read as a log-variance in the KL": "kl-var-as-logvar",
    "(c) KL averaged over the latent dimensions": "kl-mean-over-dims",
    "(c) KL averaged over the pixels": "kl-mean-over-pixels",
    "(d) the last batch of the last epoch": LAST_BATCH,
    "(e) hidden sizes 300-100-20": "hidden20",
}


@dataclass(frozen=True)
class Tolerances:
    """The fit's tolerances; ``seed_sd[(reading, term)]``: the seeds' SD of the ``"epoch"`` mean or ``"last batch"``."""

    seed_sd: Mapping[tuple[str, str], float]
    n_seeds: int
    k: float = K_SEED

    def of(self, dataset: str, term: str, last_batch: bool = False) -> float:
        """The tolerance in nats: ``max(the report's rounding, k * seed spread)``."""
        sd = self.seed_sd[("last batch" if last_batch else "epoch", term)]
        return max(REPORT_ROUNDING[dataset][term], self.k * sd)


def tolerances(seed_terms: Iterable[Mapping[str, float]], k: float = K_SEED) -> Tolerances:
    """The tolerances from the printed terms of several seeds of one run (as :func:`printed_terms` gives them)."""
    seed_terms = list(seed_terms)
    if len(seed_terms) < 2:
        raise ValueError("a seed spread needs at least two seeds")
    readings = (("epoch", ""), ("last batch", "last_"))
    sd = {(r, t): statistics.stdev(float(s[p + t]) for s in seed_terms) for r, p in readings for t in TERMS}
    return Tolerances(sd, len(seed_terms), k)


def printed_terms(r: Run) -> dict[str, float]:
    """The terms a run's training prints: the last epoch's means and the last batch's values."""
    return {t: r.train[t] for t in TERMS} | {f"last_{t}": r.history[-1][f"last_{t}"] for t in TERMS}


def seed_tolerances() -> Tolerances:
    """The tolerances from the five seeds of the base MLP run on MNIST (trains those not cached yet)."""
    return tolerances(printed_terms(run(config)) for config in SEED_GRID.values())


@dataclass(frozen=True)
class Reading:
    """What one candidate prints on one data set, the exact KL of its model, and the tolerances (nats) of its fit."""

    candidate: str
    dataset: str
    recon: float
    kl: float
    exact_kl: float
    fits: bool
    recon_tol: float = float("nan")
    kl_tol: float = float("nan")


def within(value: float, reference: float, tolerance: float) -> bool:
    """``|value - reference| <= tolerance`` (all in nats)."""
    return abs(value - reference) <= tolerance


def fits(dataset: str, recon: float, kl: float, tol: Tolerances, last_batch: bool = False) -> bool:
    """Whether printed terms ``recon`` and ``kl`` lie within the tolerances of the report's on ``dataset``."""
    ref = REPORT[f"mlp-{dataset}"]
    return all(within(v, ref[t], tol.of(dataset, t, last_batch)) for t, v in (("recon", recon), ("kl", kl)))


def read(candidate: str, dataset: str, r: Any, test_x: Any, tol: Tolerances) -> Reading:
    """One candidate's :class:`Reading` from its run ``r``; ``exact_kl`` is ``r.model``'s ELBO KL on ``test_x``."""
    last_batch = CANDIDATES[candidate] == LAST_BATCH
    terms, prefix = printed_terms(r), "last_" if last_batch else ""
    recon, kl = terms[prefix + "recon"], terms[prefix + "kl"]
    exact = average_loss(r.model, test_x, r.config.c)["kl"]
    recon_tol, kl_tol = tol.of(dataset, "recon", last_batch), tol.of(dataset, "kl", last_batch)
    return Reading(candidate, dataset, recon, kl, exact, fits(dataset, recon, kl, tol, last_batch), recon_tol, kl_tol)


def readings(n_images: int = 10_000, tol: Tolerances | None = None) -> list[Reading]:
    """Every candidate on both data sets, judged with ``tol`` (default :func:`seed_tolerances`), on ``n_images``."""
    tol = seed_tolerances() if tol is None else tol
    out = []
    for dataset in DATASETS:
        test_x = load_dataset(dataset, "test")[0][:n_images]
        for label, suffix in CANDIDATES.items():
            r = run(BASE[f"mlp-{dataset}"] if suffix in ("", LAST_BATCH) else REPORT_KL[f"mlp-{dataset}-{suffix}"])
            out.append(read(label, dataset, r, test_x, tol))
    return out


def fitting(found: list[Reading]) -> list[str]:
    """The candidates that fit on every data set, in the order of :data:`CANDIDATES`."""
    verdicts = {c: [r.fits for r in found if r.candidate == c] for c in CANDIDATES}
    return [c for c, ok in verdicts.items() if ok and all(ok)]
