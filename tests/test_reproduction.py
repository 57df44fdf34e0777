"""The report-KL fit rule of vae_tut.reproduction, on made-up numbers and fake runs (nothing is trained)."""

import math
from types import SimpleNamespace

import pytest

from vae_tut import reproduction
from vae_tut.experiments import REPORT


def seeds(recons, kls, last_recons=None, last_kls=None):
    last_recons = recons if last_recons is None else last_recons
    last_kls = kls if last_kls is None else last_kls
    return [{"recon": a, "kl": b, "last_recon": c, "last_kl": d}
            for a, b, c, d in zip(recons, kls, last_recons, last_kls)]


def test_within():
    assert reproduction.within(105, 100, 5) and not reproduction.within(106, 100, 5)
    assert reproduction.within(-9.5, -10, 0.5)


def test_tolerance_is_k_seed_spreads_or_the_report_rounding():
    # recon SD 1.0, KL SD 0.1: 3 SDs are 3 nats and 0.3 nats
    tol = reproduction.tolerances(seeds([290, 291, 292], [7.9, 8.0, 8.1]))
    assert tol.n_seeds == 3 and tol.k == reproduction.K_SEED == 3
    assert tol.seed_sd[("epoch", "recon")] == pytest.approx(1.0)
    assert tol.of("mnist", "recon") == pytest.approx(3.0)
    # 0.3 nats of seed spread is below the report's rounding of "14" (0.5) but above that of "13.4" (0.05)
    assert tol.of("mnist", "kl") == 0.5
    assert tol.of("fashion-mnist", "kl") == pytest.approx(0.3)
    # identical seeds: only the rounding is left
    flat = reproduction.tolerances(seeds([290] * 5, [8.0] * 5))
    assert flat.of("mnist", "recon") == 0.5 and flat.of("fashion-mnist", "kl") == 0.05
    with pytest.raises(ValueError):
        reproduction.tolerances(seeds([290], [8.0]))


def test_last_batch_reading_gets_the_last_batch_spread():
    tol = reproduction.tolerances(seeds([290, 291, 292], [8, 8, 8], [280, 290, 300], [6, 8, 10]))
    assert tol.of("mnist", "recon", last_batch=True) == pytest.approx(30.0)
    assert tol.of("mnist", "kl", last_batch=True) == pytest.approx(6.0)
    assert tol.of("mnist", "recon") == pytest.approx(3.0)


def test_fits_needs_both_terms():
    tol = reproduction.tolerances(seeds([290, 291, 292], [7.9, 8.0, 8.1]))   # 3 nats, KL 0.5 / 0.3
    ref = REPORT["mlp-mnist"]
    assert reproduction.fits("mnist", ref["recon"] + 2.9, ref["kl"] - 0.4, tol)
    assert not reproduction.fits("mnist", ref["recon"] + 3.1, ref["kl"], tol)
    assert not reproduction.fits("mnist", ref["recon"], ref["kl"] + 0.6, tol)
    fashion = REPORT["mlp-fashion-mnist"]
    assert reproduction.fits("fashion-mnist", fashion["recon"], fashion["kl"] + 0.29, tol)
    assert not reproduction.fits("fashion-mnist", fashion["recon"], fashion["kl"] + 0.31, tol)


def fake_run(recon, kl, last_recon, last_kl, exact_kl):
    return SimpleNamespace(train={"recon": recon, "kl": kl, "total": recon + kl},
                           history=[{"last_recon": last_recon, "last_kl": last_kl}],
                           model=SimpleNamespace(exact_kl=exact_kl), config=SimpleNamespace(c=0.05))


def test_read_on_fake_runs(monkeypatch):
    monkeypatch.setattr(reproduction, "average_loss", lambda model, x, c: {"kl": model.exact_kl})
    tol = reproduction.tolerances(seeds([290, 291, 292], [7.9, 8.0, 8.1], [280, 290, 300], [6, 8, 10]))
    ref = REPORT["mlp-mnist"]
    base = "none: the book's run"
    last = "(d) the last batch of the last epoch"
    pixels = "(c) KL averaged over the pixels"
    # the book's run prints about 8 nats of KL: not the report's 14
    r = reproduction.read(base, "mnist", fake_run(ref["recon"], 8.0, 0, 0, 8.0), None, tol)
    assert (r.recon, r.kl, r.exact_kl, r.fits) == (ref["recon"], 8.0, 8.0, False)
    assert (r.recon_tol, r.kl_tol) == (pytest.approx(3.0), 0.5)
    # the last-batch reading reads the history, and is judged with the last batch's spread
    r = reproduction.read(last, "mnist", fake_run(ref["recon"], 8.0, ref["recon"] + 20, ref["kl"] - 5, 8.0),
                          None, tol)
    assert (r.recon, r.kl, r.fits) == (ref["recon"] + 20, ref["kl"] - 5, True)
    assert r.recon_tol == pytest.approx(30.0)
    # a candidate prints one KL and trains with another: exact_kl is the model's, not the printed number
    r = reproduction.read(pixels, "mnist", fake_run(ref["recon"], ref["kl"], 0, 0, 784 * ref["kl"]), None, tol)
    assert r.fits and r.exact_kl == 784 * ref["kl"]


def test_fitting_needs_every_data_set():
    def reading(candidate, dataset, ok):
        return reproduction.Reading(candidate, dataset, 0.0, 0.0, 0.0, ok)

    a, b, c = list(reproduction.CANDIDATES)[:3]
    found = [reading(a, "mnist", True), reading(a, "fashion-mnist", False),
             reading(b, "mnist", True), reading(b, "fashion-mnist", True),
             reading(c, "mnist", False), reading(c, "fashion-mnist", False)]
    assert reproduction.fitting(found) == [b]
    assert reproduction.fitting([]) == []


def test_readings_use_the_given_tolerances(monkeypatch):
    # readings() wires every candidate to its run on both data sets; runs and data are faked here
    ref = REPORT["mlp-mnist"]
    monkeypatch.setattr(reproduction, "run", lambda config: fake_run(ref["recon"], ref["kl"], 0.0, 0.0, 1.0))
    monkeypatch.setattr(reproduction, "load_dataset", lambda name, split: ([], []))
    monkeypatch.setattr(reproduction, "average_loss", lambda model, x, c: {"kl": model.exact_kl})
    tol = reproduction.tolerances(seeds([290, 291, 292], [7.9, 8.0, 8.1]))
    found = reproduction.readings(tol=tol)
    assert [(r.candidate, r.dataset) for r in found] == [
        (c, ds) for ds in reproduction.DATASETS for c in reproduction.CANDIDATES]
    by = {(r.candidate, r.dataset): r for r in found}
    # every run prints the MNIST report's terms: they fit on MNIST; on Fashion-MNIST the
    # reconstruction is 77 nats off; the last-batch reading prints zeros
    assert all(by[(c, "mnist")].fits for c in reproduction.CANDIDATES if c != "(d) the last batch of the last epoch")
    assert not any(r.fits for r in found if r.dataset == "fashion-mnist")
    assert reproduction.fitting(found) == []
    assert all(not math.isnan(r.recon_tol) for r in found)
