"""Which reading of the report's code reproduces the KL term it prints? (reproduction appendix, chapter 5)

Each candidate explanation is a run of the cache that changes one thing in the
base MLP run (:data:`~vae_tut.experiments.REPORT_KL`), or, for the last-batch
reading, a different number read off the base run's history. Every candidate is
trained once, with one seed, so the test has to allow for what another seed
would move. The fit rule:

- The **seed spread** of a printed term (reconstruction or KL) is its sample
  standard deviation over the five seeds of the base MLP run on MNIST
  (:data:`~vae_tut.experiments.SEED_GRID`), taken over the same kind of number
  the candidate prints: the last epoch's mean, or for the last-batch reading the
  last batch's value. Fashion-MNIST borrows the MNIST spread.
- The **tolerance** of a term on a data set is
  ``max(half a unit of the report's last printed digit, K_SEED * seed spread)``,
  in nats (:meth:`Tolerances.of`). If a candidate's code were the report's, its one run and
  the report's one run would differ by a seed's chance alone, with a standard deviation
  of sqrt(2) seed spreads; ``K_SEED = 3`` is about two of those.
- A candidate **fits** when both printed terms lie within their tolerances of
  the report's on both data sets. A candidate that does not fit is *not
  reproduced by its run*; with one run per candidate and five seeds behind the
  spread, that is not a proof that the report's code did something else.

Chapter 5 quotes the verdict that the appendix derives, from the same functions.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .data import load_dataset
from .experiments import BASE, REPORT, REPORT_KL, SEED_GRID, Run, run
from .train import average_loss

DATASETS = ("mnist", "fashion-mnist")
TERMS = ("recon", "kl")
K_SEED = 3.0
# Half a unit of the last digit the report prints: reconstruction 293 and 216, KL 14 and 13.4.
REPORT_ROUNDING = {
    "mnist": {"recon": 0.5, "kl": 0.5},
    "fashion-mnist": {"recon": 0.5, "kl": 0.05},
}
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
    """The fit rule's tolerances, from the seed spread of the printed terms (module docstring).

    ``seed_sd`` maps ``(reading, term)`` to the sample standard deviation over the seeds,
    ``reading`` being ``"epoch"`` (the last epoch's mean) or ``"last batch"``.
    """

    seed_sd: Mapping[tuple[str, str], float]
    n_seeds: int
    k: float = K_SEED
    rounding: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: REPORT_ROUNDING)

    def of(self, dataset: str, term: str, last_batch: bool = False) -> float:
        """The tolerance in nats: ``max(report's rounding, k * seed spread)``."""
        sd = self.seed_sd[("last batch" if last_batch else "epoch", term)]
        return max(self.rounding[dataset][term], self.k * sd)


def tolerances(seed_terms: Iterable[Mapping[str, float]], k: float = K_SEED) -> Tolerances:
    """The tolerances from the printed terms of several seeds of one run.

    Each item holds ``recon`` and ``kl`` (the last epoch's means) and ``last_recon`` and
    ``last_kl`` (the last batch's values), as :func:`printed_terms` returns them.
    """
    seed_terms = list(seed_terms)
    if len(seed_terms) < 2:
        raise ValueError("a seed spread needs at least two seeds")
    sd = {}
    for term in TERMS:
        sd[("epoch", term)] = statistics.stdev(float(s[term]) for s in seed_terms)
        sd[("last batch", term)] = statistics.stdev(float(s[f"last_{term}"]) for s in seed_terms)
    return Tolerances(sd, len(seed_terms), k)


def printed_terms(r: Run) -> dict[str, float]:
    """The terms a run's training prints: the last epoch's means and the last batch's values."""
    last = r.history[-1]
    return {
        "recon": r.train["recon"],
        "kl": r.train["kl"],
        "last_recon": last["last_recon"],
        "last_kl": last["last_kl"],
    }


def seed_tolerances() -> Tolerances:
    """The tolerances from the five seeds of the base MLP run on MNIST (trains those not cached yet)."""
    return tolerances(printed_terms(run(config)) for config in SEED_GRID.values())


@dataclass(frozen=True)
class Reading:
    """What one candidate prints on one data set, and the exact KL of the model it trained.

    ``recon_tol`` and ``kl_tol`` are the tolerances (nats) the fit was judged with.
    """

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
    return within(recon, ref["recon"], tol.of(dataset, "recon", last_batch)) and within(
        kl, ref["kl"], tol.of(dataset, "kl", last_batch)
    )


def _run_of(dataset: str, suffix: str) -> Run:
    base = f"mlp-{dataset}"
    if suffix in ("", LAST_BATCH):
        return run(BASE[base])
    return run(REPORT_KL[f"{base}-{suffix}"])


def read(candidate: str, dataset: str, r: Any, test_x: Any, tol: Tolerances) -> Reading:
    """One candidate's :class:`Reading` from its run ``r`` (anything with ``train``, ``history``,
    ``model`` and ``config.c``); ``exact_kl`` is the ELBO's KL of ``r.model`` on ``test_x``."""
    last_batch = CANDIDATES[candidate] == LAST_BATCH
    terms = printed_terms(r)
    recon, kl = (terms["last_recon"], terms["last_kl"]) if last_batch else (terms["recon"], terms["kl"])
    exact = average_loss(r.model, test_x, r.config.c)["kl"]
    return Reading(
        candidate,
        dataset,
        recon,
        kl,
        exact,
        fits(dataset, recon, kl, tol, last_batch),
        tol.of(dataset, "recon", last_batch),
        tol.of(dataset, "kl", last_batch),
    )


def readings(n_images: int = 10_000, tol: Tolerances | None = None) -> list[Reading]:
    """Every candidate on both data sets (trains the runs that are not cached yet).

    ``tol`` defaults to :func:`seed_tolerances`. ``exact_kl`` is the ELBO's KL of the
    trained model on the first ``n_images`` test images, whatever formula its training printed.
    """
    tol = seed_tolerances() if tol is None else tol
    out = []
    for dataset in DATASETS:
        test_x = load_dataset(dataset, "test")[0][:n_images]
        for label, suffix in CANDIDATES.items():
            out.append(read(label, dataset, _run_of(dataset, suffix), test_x, tol))
    return out


def fitting(found: list[Reading]) -> list[str]:
    """The candidates that fit on every data set, in the order of :data:`CANDIDATES`."""
    return [
        c for c in CANDIDATES if any(r.candidate == c for r in found) and all(r.fits for r in found if r.candidate == c)
    ]
