"""The report-KL test of vae_tut.reproduction on quick runs: every candidate read, the fit rule applied."""

from vae_tut import reproduction
from vae_tut.experiments import REPORT


def test_within():
    assert reproduction.within(105, 100, 0.05) and not reproduction.within(106, 100, 0.05)
    assert reproduction.within(-9.5, -10, 0.05)


def test_readings_on_quick_runs(monkeypatch, real_data):
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    found = reproduction.readings(n_images=200)
    assert {r.candidate for r in found} == set(reproduction.CANDIDATES)
    assert len(found) == 2 * len(reproduction.CANDIDATES)
    by = {(r.candidate, r.dataset): r for r in found}
    base = by[("none: the book's run", "mnist")]
    # the per-pixel KL prints 1/784 of what it trained; the exact KL of that model is not divided
    pixels = by[("(c) KL averaged over the pixels", "mnist")]
    assert pixels.kl < pixels.exact_kl / 100
    # the last-batch reading is the base run's history, not another run
    last = by[("(d) the last batch of the last epoch", "mnist")]
    assert last.exact_kl == base.exact_kl and last.kl != base.kl
    for r in found:
        ref = REPORT[f"mlp-{r.dataset}"]
        assert r.fits == (reproduction.within(r.recon, ref["recon"], reproduction.RECON_TOL)
                          and reproduction.within(r.kl, ref["kl"], reproduction.KL_TOL))
    # quick runs are nowhere near the report's numbers: nothing fits
    assert reproduction.fitting(found) == []
