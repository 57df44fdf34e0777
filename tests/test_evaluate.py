"""The ELBO and importance-weighted estimators of vae_tut.evaluate, checked where log p(x) is exact,
and the cached estimates of trained runs (vae_tut.likelihood).

A linear-Gaussian latent model, f(z) = W z + b with p(z) = N(0, I) and
p(x|z) = N(f(z), cI), has log p(x) = log N(x; b, W W^T + c I) in closed form.
With orthogonal columns in W its posterior is a diagonal Gaussian, so the
encoder can be exact or deliberately wrong.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vae_tut.errors import CacheError, ConfigError
from vae_tut.evaluate import elbo, elbo_terms, iwae_from_weights, log_importance_weights
from vae_tut.experiments import RunConfig
from vae_tut.likelihood import decoder_c, estimate_likelihood, evaluate_run, is_estimated, likelihood_settings
from vae_tut.models import build_model

C = 0.3
D, Z = 6, 2


class LinearGaussian:
    """``encode`` gives the exact posterior, or (``exact=False``) a shifted and widened one."""

    def __init__(self, exact: bool = True, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(D, Z, generator=g, dtype=torch.float64))
        self.scales = torch.tensor([1.5, 0.7], dtype=torch.float64)
        self.W = q * self.scales                       # orthogonal columns: W^T W = diag(scales^2)
        self.b = torch.randn(D, generator=g, dtype=torch.float64) * 0.5
        self.exact = exact

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W.T + self.b

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        var = 1.0 / (1.0 + self.scales ** 2 / C)       # (I + W^T W / c)^-1, diagonal
        mean = var * ((x - self.b) @ self.W) / C
        return mean, var.expand_as(mean)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.posterior(x)
        if self.exact:
            return mean, var
        return mean + 0.2, 2.0 * var                   # a wrong but overlapping q

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.W @ self.W.T + C * torch.eye(D, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)


def iwae_bound(model, images: torch.Tensor, c: float, k: int, **kwargs) -> torch.Tensor:
    """Per-image k-sample bound: the estimators' two steps in one."""
    return iwae_from_weights(log_importance_weights(model, images, c, k, **kwargs))


def data(model: LinearGaussian, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z, generator=g, dtype=torch.float64)
    return model.decoder_mean(z) + math.sqrt(C) * torch.randn(n, D, generator=g, dtype=torch.float64)


def test_large_k_recovers_exact_log_likelihood():
    model = LinearGaussian(exact=False)
    x = data(model, 8)
    estimate = iwae_bound(model, x, C, 5000, seed=0)
    exact = model.log_px(x)
    assert estimate.dtype == torch.float64
    # Monte Carlo error ~0.01 nats per image here, against a k = 1 gap of ~0.5 nats
    assert torch.allclose(estimate, exact, atol=0.05), (estimate - exact)
    assert abs((estimate - exact).mean().item()) < 0.015


def test_bound_rises_with_k_and_stays_below_log_px():
    model = LinearGaussian(exact=False)
    x = data(model, 20)
    log_w = log_importance_weights(model, x, C, 2000, seed=3)
    exact = model.log_px(x).mean().item()
    means = [iwae_from_weights(log_w, k).mean().item() for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means
    # the gap at k = 1 is the KL(q || p(z|x)) of a visibly wrong q
    assert exact - means[0] > 0.1
    for value in means:
        assert value <= exact + 0.01, (value, exact)


def test_exact_posterior_gives_exact_answer_with_one_sample():
    model = LinearGaussian(exact=True)
    x = data(model, 5)
    log_w = log_importance_weights(model, x, C, 50, seed=0)
    exact = model.log_px(x)
    # every weight p(x, z) / p(z | x) equals p(x): zero variance
    assert torch.allclose(log_w, exact.unsqueeze(1).expand_as(log_w), atol=1e-9)
    assert torch.allclose(iwae_bound(model, x, C, 1), exact, atol=1e-9)


def test_elbo_matches_closed_form_and_gap_is_posterior_kl():
    model = LinearGaussian(exact=False)
    x = data(model, 6)
    expected, kl = elbo_terms(model, x, C, samples=20000, seed=0)
    mean, var = model.encode(x)
    resid = x - model.decoder_mean(mean)
    trace = (var * model.scales ** 2).sum(1)          # tr(W diag(var) W^T) with orthogonal columns
    closed = -(resid.pow(2).sum(1) + trace) / (2 * C) - 0.5 * D * math.log(2 * math.pi * C)
    assert torch.allclose(expected, closed, atol=0.03)
    kl_prior = 0.5 * (var + mean ** 2 - 1 - var.log()).sum(1)
    assert torch.allclose(kl, kl_prior)
    # log p(x) - ELBO = KL(q || p(z|x)), both Gaussians with diagonal covariances
    pm, pv = model.posterior(x)
    kl_post = 0.5 * (var / pv + (mean - pm) ** 2 / pv - 1 - (var / pv).log()).sum(1)
    gap = model.log_px(x) - (closed - kl_prior)
    assert torch.allclose(gap, kl_post, atol=1e-9)
    assert torch.allclose(elbo(model, x, C, samples=20000, seed=0), expected - kl)


def test_untrained_vae_one_sample_bound_averages_to_elbo():
    torch.manual_seed(0)
    model = build_model("mlp", 2)
    x = torch.rand(8, 1, 28, 28)
    reference = elbo(model, x, 0.05, samples=4000, seed=1)
    log_w = log_importance_weights(model, x, 0.05, 4000, seed=2)
    one_sample = log_w.mean(1)                        # the average of many k = 1 bounds
    assert torch.allclose(one_sample, reference, rtol=0, atol=0.1 + 0.002 * reference.abs().max())
    k100 = iwae_from_weights(log_w, 100)
    assert (k100 >= reference - 1e-3).all()
    assert k100.mean() > reference.mean()


def test_cnn_mode_restored_and_batch_norm_untouched():
    torch.manual_seed(0)
    model = build_model("cnn", 2)
    model.train()
    before = model.decoder.conv_transpose_layers[1].running_mean.clone()
    x = torch.rand(4, 1, 28, 28)
    out = iwae_bound(model, x, 0.05, 3, max_decodes=5)
    assert out.shape == (4,) and torch.isfinite(out).all()
    assert model.training
    assert torch.equal(model.decoder.conv_transpose_layers[1].running_mean, before)


def test_seeded_and_independent_of_chunking():
    model = LinearGaussian(exact=False)
    x = data(model, 7)
    a = iwae_bound(model, x, C, 30, seed=5)
    b = iwae_bound(model, x, C, 30, seed=5)
    c = iwae_bound(model, x, C, 30, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(iwae_bound(model, x, C, 30, generator=g), a)
    assert torch.allclose(iwae_bound(model, x, C, 30, seed=5, max_decodes=7), a, atol=1e-12)


def test_groups_of_samples():
    log_w = torch.tensor([[0.0, 0.0, math.log(3.0), math.log(3.0)]])
    assert iwae_from_weights(log_w).item() == pytest.approx(math.log(2.0))
    assert iwae_from_weights(log_w, 2).item() == pytest.approx(0.5 * math.log(3.0))
    assert iwae_from_weights(log_w, 1).item() == pytest.approx(0.5 * math.log(3.0))


def test_bad_k():
    model = LinearGaussian()
    for k in (0, -3, 1.5, True, "10"):
        with pytest.raises(ConfigError) as caught:
            iwae_bound(model, data(model, 2), C, k)
        assert str(caught.value) == f"k must be a whole number >= 1, got {k!r}"


def test_bad_c():
    model = LinearGaussian()
    x = data(model, 2)
    for c in (0, -0.1, float("nan"), float("inf")):
        for call in (lambda c=c: iwae_bound(model, x, c, 5), lambda c=c: elbo(model, x, c)):
            with pytest.raises(ConfigError) as caught:
                call()
            assert str(caught.value) == f"decoder variance c must be a finite number > 0, got {c!r}"


def test_bad_inputs():
    model = LinearGaussian()
    with pytest.raises(ConfigError):
        iwae_bound(model, torch.empty(0, D, dtype=torch.float64), C, 5)
    with pytest.raises(ConfigError):
        iwae_from_weights(torch.zeros(3, 4), 5)
    with pytest.raises(ConfigError):
        elbo(model, data(model, 2), C, samples=0)


def test_evaluate_run_is_consistent_and_cached(tmp_path):
    torch.manual_seed(0)
    fake = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="a" * 64)
    x = torch.rand(6, 1, 28, 28)
    first = evaluate_run(fake, x, ks=(1, 10, 100), elbo_samples=50)
    assert set(first.iwae) == {1, 10, 100}
    assert first.iwae[1] < first.iwae[10] < first.iwae[100]
    assert first.iwae[1] == pytest.approx(first.elbo, abs=0.05 * abs(first.elbo) + 1.0)
    files = list((tmp_path / "runs" / "likelihood").glob("*/result.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["n_images"] == 6
    again = evaluate_run(fake, x, ks=(1, 10, 100), elbo_samples=50)
    assert not first.cached and again.cached
    assert dataclasses.replace(again, cached=False) == first
    with pytest.raises(ConfigError):
        evaluate_run(fake, x, ks=())


def test_chapter_ten_estimates_are_computed_once_per_run(tiny_data, monkeypatch, tmp_path):
    """estimate_likelihood trains the run, scores chapter 10's test images once; is_estimated says so."""
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    config = RunConfig(epochs=1)
    assert not is_estimated(config)  # not even trained
    trained, first = estimate_likelihood(config, device="cpu")
    assert trained.origin == "trained" and not first.cached and is_estimated(config, device="cpu")
    settings = likelihood_settings()
    assert sorted(first.iwae) == list(settings["ks"]) and settings["n_images"] == 100
    assert json.loads(_likelihood_entries(tmp_path)[0].read_text())["n_images"] == 100
    again = estimate_likelihood(config)[1]
    assert again.cached and dataclasses.replace(again, cached=False) == first


def _likelihood_entries(tmp_path) -> list[Path]:
    return sorted((tmp_path / "runs" / "likelihood").glob("*/result.json"))


def test_a_model_with_other_weights_is_scored_afresh(tmp_path):
    torch.manual_seed(0)
    real = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="a" * 64)
    other = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="b" * 64)
    x = torch.rand(4, 1, 28, 28)
    first = evaluate_run(real, x, ks=(1, 4), elbo_samples=2)
    second = evaluate_run(other, x, ks=(1, 4), elbo_samples=2)  # same config, other weights
    assert not second.cached and second.elbo != first.elbo
    assert len(_likelihood_entries(tmp_path)) == 2
    assert evaluate_run(real, x, ks=(1, 4), elbo_samples=2).cached
    with pytest.raises(ConfigError, match="checksum"):  # a run not from the cache is not cached
        evaluate_run(SimpleNamespace(config=RunConfig(), model=real.model), x, ks=(1,))


def test_an_edited_likelihood_entry_is_refused_in_one_line(tmp_path):
    torch.manual_seed(0)
    fake = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="a" * 64)
    x = torch.rand(4, 1, 28, 28)
    evaluate_run(fake, x, ks=(1, 4), elbo_samples=2)
    [entry] = _likelihood_entries(tmp_path)
    saved = json.loads(entry.read_text())
    entry.write_text(json.dumps({**saved, "elbo": saved["elbo"] + 10.0}))
    with pytest.raises(CacheError, match="do not match their checksum") as caught:
        evaluate_run(fake, x, ks=(1, 4), elbo_samples=2)
    assert "\n" not in str(caught.value)
    entry.write_text(json.dumps({k: v for k, v in saved.items() if k != "checksum"}))
    with pytest.raises(CacheError, match="checksum"):
        evaluate_run(fake, x, ks=(1, 4), elbo_samples=2)
    entry.write_text("{not json")
    with pytest.raises(CacheError, match="unreadable"):
        evaluate_run(fake, x, ks=(1, 4), elbo_samples=2)
    from vae_tut.likelihood import _numbers_checksum

    short = {k: v for k, v in saved.items() if k not in ("checksum", "kl")}  # a field gone, checksum made anew
    entry.write_text(json.dumps({**short, "checksum": _numbers_checksum(short)}))
    with pytest.raises(CacheError, match="lacks its estimates"):
        evaluate_run(fake, x, ks=(1, 4), elbo_samples=2)


def test_the_estimators_do_not_import_the_runs():
    import subprocess
    import sys

    code = "import sys, vae_tut.evaluate; print(sorted(m for m in sys.modules if m.startswith('vae_tut.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vae_tut.evaluate" in out and "vae_tut.experiments" not in out and "vae_tut.likelihood" not in out


def test_estimators_leave_the_models_layout_and_mode_alone():
    torch.manual_seed(0)
    model = build_model("cnn", 2).train()
    x = torch.rand(3, 1, 28, 28)
    elbo(model, x, 0.05)
    log_importance_weights(model, x, 0.05, 4)
    assert model.training
    assert all(p.is_contiguous() for p in model.parameters())
    model.to(memory_format=torch.channels_last).eval()
    elbo(model, x, 0.05)
    conv = model.encoder.conv_layers[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not model.training


# ---------------------------------------------------------------- 8-bit bits per dimension

from vae_tut.evaluate import (  # noqa: E402
    LEVELS,
    bits_per_dim_8bit,
    dequantize,
    independent_pixels_bits_per_dim,
    log_importance_weights_at,
)


def _eight_bit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, d), generator=g).to(torch.float64) / 255


def test_uniform_density_costs_exactly_8_bits():
    assert float(bits_per_dim_8bit(torch.zeros(7), 784).max()) == pytest.approx(8.0, abs=1e-6)
    # the independent-pixel model of data spread evenly over all levels is the uniform one
    even = torch.arange(256, dtype=torch.float64).repeat(3, 1).T.reshape(256, 3) / 255
    assert independent_pixels_bits_per_dim(even, even) == pytest.approx(8.0, abs=1e-6)


def test_dequantize_stays_in_each_pixels_cell():
    x = _eight_bit(50, 20)
    xq = dequantize(x, seed=3)
    k = torch.round(x * 255)
    assert ((xq >= k / LEVELS) & (xq < (k + 1) / LEVELS)).all()
    assert torch.equal(xq, dequantize(x, seed=3)) and not torch.equal(xq, dequantize(x, seed=4))
    with pytest.raises(ConfigError, match="8-bit images"):
        dequantize(torch.full((2, 3), 0.3001))


class _ZIgnoringModel:
    """Decoder mean 0.5 whatever z is, encoder = prior: log p(x) = log N(x; 0.5, cI) exactly."""

    def __init__(self, d: int):
        self.d = d

    def encode(self, x):
        return torch.zeros(len(x), 2, dtype=x.dtype), torch.ones(len(x), 2, dtype=x.dtype)

    def decoder_mean(self, z):
        return torch.full((len(z), self.d), 0.5, dtype=z.dtype)


def test_8bit_bound_of_a_discretised_gaussian_matches_a_direct_sum():
    from torch.distributions import Normal

    d, c = 16, 0.04
    x = _eight_bit(40, d, seed=1)
    model = _ZIgnoringModel(d)
    # the estimator: importance weights at dequantised copies, averaged over many dequantisations
    bits = []
    for seed in range(20):
        log_w = log_importance_weights_at(model, x, [dequantize(x, seed=seed)], c, 4)[0]
        bits.append(bits_per_dim_8bit(iwae_from_weights(log_w).mean(), d))
    estimate = float(torch.stack(bits).mean())
    # direct sum: the probability of each level is the Gaussian's mass on its cell
    k = torch.round(x * 255)
    normal = Normal(0.5, math.sqrt(c))
    mass = normal.cdf((k + 1) / LEVELS) - normal.cdf(k / LEVELS)
    direct = float(-mass.log2().sum(1).mean() / d)
    assert estimate >= direct - 1e-3          # an upper bound on the cost ...
    assert estimate == pytest.approx(direct, abs=2e-3)   # ... and a tight one for a smooth density


def test_independent_pixels_by_hand():
    train = torch.zeros(9, 1, 28, 28)
    train[:, 0, 0, 0] = 7 / 255                 # pixel 0 is always level 7, the others always 0
    test = train[:2]
    bits = independent_pixels_bits_per_dim(train, test, smoothing=1.0)
    per_pixel = -math.log2((9 + 1) / (9 + 256))  # every pixel: 9 of 9 training images at its level
    assert bits == pytest.approx(per_pixel, rel=1e-9)


def test_evaluate_run_reports_8bit_bits_above_zero(tmp_path):
    torch.manual_seed(0)
    fake = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="a" * 64)
    x = torch.randint(0, 256, (5, 1, 28, 28)).float() / 255
    res = evaluate_run(fake, x, ks=(1, 10), elbo_samples=2)
    assert set(res.bits8) == {1, 10} and all(b > 0 for b in res.bits8.values())
    assert res.bits8[10] <= res.bits8[1] + 0.05


class _ConstantLogits:
    """Bernoulli decoder with the same logits whatever z is, encoder = prior: every importance
    weight is p(x) = prod Bernoulli(x_d; sigmoid(l_d)), known exactly."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def encode(self, x):
        return torch.zeros(len(x), 3), torch.ones(len(x), 3)

    def decode(self, z):
        return self.logits.expand(len(z), *self.logits.shape)


def test_bernoulli_bound_is_exact_when_the_decoder_ignores_z():
    torch.manual_seed(0)
    logits = torch.randn(1, 28, 28)
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.4))
    exact = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    model = _ConstantLogits(logits)
    bound = iwae_bound(model, x, 0.05, 7, likelihood="bernoulli")
    assert torch.allclose(bound, exact, atol=1e-4)
    expected, kl = elbo_terms(model, x, 0.05, 3, likelihood="bernoulli")
    assert torch.allclose(expected, exact, atol=1e-4) and torch.allclose(kl, torch.zeros(5), atol=1e-6)


def test_evaluate_run_scores_a_bernoulli_run_on_binary_images(tmp_path):
    torch.manual_seed(0)
    config = RunConfig(likelihood="bernoulli", train_size=64, epochs=1)
    model = build_model("mlp", 2).eval()
    trained = SimpleNamespace(config=config, model=model)
    images = torch.rand(8, 1, 28, 28)
    out = evaluate_run(trained, images, ks=(1, 4), cache=False)
    assert out.bits8 is None
    assert out.iwae[4] <= 0 and out.elbo <= 0  # log-probabilities of binary images
    binary = torch.bernoulli(images, generator=torch.Generator().manual_seed(0))
    direct = iwae_bound(model, binary, 0.05, 4, seed=1, likelihood="bernoulli").mean().item()
    assert out.iwae[4] == pytest.approx(direct, rel=1e-5)


def test_a_learned_decoder_variance_is_scored_with_its_own_c():
    torch.manual_seed(0)
    c = 0.02  # the untrained model's log c is set by hand; its config keeps the default c = 0.05
    model = build_model("mlp", 2, learn_c=True)
    with torch.no_grad():
        model.log_c.fill_(math.log(c))
    learned = SimpleNamespace(config=RunConfig(likelihood="gaussian-learned"), model=model)
    assert decoder_c(learned) == pytest.approx(c, rel=1e-6)
    assert decoder_c(SimpleNamespace(config=RunConfig(c=0.3), model=build_model("mlp", 2))) == 0.3
    x = torch.randint(0, 256, (6, 1, 28, 28)).float() / 255
    out = evaluate_run(learned, x, ks=(1, 4), elbo_samples=3, cache=False)
    assert out.c == pytest.approx(c, rel=1e-6) and out.bits8 is not None
    # the same three draws per image as elbo_terms (seed 0, one batch), scored by hand with c = 0.02
    eps = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, var = model.encode(x)
        z = mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * eps
        fz = torch.sigmoid(model.decode(z.reshape(18, 2))).reshape(6, 3, -1)
        squared = (x.flatten(1).unsqueeze(1) - fz).pow(2).sum(-1)
        log_lik = -squared / (2 * c) - 0.5 * 784 * math.log(2 * math.pi * c)
        kl = 0.5 * (var + mean.pow(2) - 1 - var.log()).sum(1)
    assert out.elbo == pytest.approx((log_lik.mean(1) - kl).mean().item(), rel=1e-5)
    assert out.kl == pytest.approx(kl.mean().item(), rel=1e-5)


def test_the_estimators_refuse_images_they_cannot_score():
    """NaN, 0..255 or integer pixels would give NaN or about -1e8 nats; each is one ConfigError instead."""
    model = build_model("mlp", 2)
    unit = "images must be a float tensor [N, ...] with values in [0, 1], got "
    for images, start, end in [
        (torch.full((2, 1, 28, 28), math.nan), unit + "NaN values", ""),
        (torch.rand(2, 1, 28, 28) * 255, unit + "values from ", " (divide 0..255 pixels by 255.0)"),
        (torch.randint(0, 256, (2, 1, 28, 28)), unit + "torch.int64 (divide 0..255 pixels by 255.0)", ""),
        (torch.tensor([[math.inf, 0.0]]),
         "images must be a float tensor [N, ...] of finite values, got infinite values", ""),
    ]:
        for estimate in (lambda x=images: elbo(model, x, 0.05),
                         lambda x=images: log_importance_weights(model, x, 0.05, 3)):
            with pytest.raises(ConfigError) as caught:
                estimate()
            message = str(caught.value)
            assert message.startswith(start) and message.endswith(end) and "\n" not in message, message


def test_a_huge_k_is_refused_before_anything_is_allocated():
    """k = 10**11 would allocate hundreds of GiB of log weights; the call says so and stops."""
    with pytest.raises(ConfigError, match=r"745\.1 GiB.*smaller k"):
        log_importance_weights(build_model("mlp", 2), torch.rand(2, 1, 28, 28), 0.05, 10**11)


def test_weights_changed_in_place_are_scored_afresh_and_a_copied_entry_is_refused(tmp_path):
    """The key is the weights the model holds now (a reader fine-tuning run.model in a notebook gets new
    estimates), and an entry copied under another model's key is refused in one line."""
    torch.manual_seed(0)
    run_ = SimpleNamespace(config=RunConfig(), model=build_model("mlp", 2), checksum="a" * 64)
    x = torch.rand(4, 1, 28, 28)
    before = evaluate_run(run_, x, ks=(1, 4), elbo_samples=2)
    with torch.no_grad():
        next(run_.model.parameters()).add_(0.5)  # the same Run, other weights: the recorded checksum is stale
    after = evaluate_run(run_, x, ks=(1, 4), elbo_samples=2)
    assert not after.cached and after.elbo != before.elbo
    first, second = _likelihood_entries(tmp_path)
    second.write_bytes(first.read_bytes())  # the first model's numbers under the second model's key
    with pytest.raises(CacheError, match=r"^likelihood entry .* holds the estimates of another model or setting; "
                                         r"delete it to compute it again$"):
        evaluate_run(run_, x, ks=(1, 4), elbo_samples=2)


def test_a_bernoulli_decoder_scores_binary_images_only():
    model = build_model("mlp", 2)
    with pytest.raises(ConfigError, match=r"^a Bernoulli decoder scores 0/1 images; binarise them first"):
        elbo(model, torch.full((2, 1, 28, 28), 0.5), 1.0, likelihood="bernoulli")
