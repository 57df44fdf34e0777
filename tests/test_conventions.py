"""Chapter 5's table of loss conventions: each row is what it claims, and the rows convert into each other."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from vae_tut import conventions as cv
from vae_tut.errors import ConfigError
from vae_tut.losses import gaussian_log_constant, kl_divergence, vae_loss
from vae_tut.models import build_model

C = 0.05


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("mlp", 2).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def rows(model, images):
    table = cv.conventions(model, images, C, seed=3)
    assert len({r.key for r in table}) == len(table)
    return {r.key: r.value for r in table}


def row(rows, key):
    return rows[key]


def same_codes(model, images, seed):
    """The codes image_terms draws: one eps per image from a generator seeded with ``seed``."""
    with torch.no_grad():
        mean, var = model.encode(images)
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed))
        return mean, var, model.decode(mean + var.sqrt() * eps)


def test_report_row_is_the_books_loss(model, images, rows):
    mean, var, logits = same_codes(model, images, 3)
    expected = vae_loss(images, logits, mean, var, C).total.item()
    assert math.isclose(row(rows, "report"), expected, rel_tol=1e-5)
    assert math.isclose(row(rows, "nelbo"), expected + gaussian_log_constant(C), rel_tol=1e-5)


def test_bce_row_is_pytorch_examples_loss(model, images, rows):
    """pytorch/examples: F.binary_cross_entropy on probabilities, summed over pixels and the batch,
    plus the closed-form KL summed over the batch, divided by the number of images."""
    mean, var, logits = same_codes(model, images, 3)
    summed = F.binary_cross_entropy(torch.sigmoid(logits), images, reduction="sum") \
        + kl_divergence(mean, var) * len(images)
    assert math.isclose(row(rows, "bce"), summed.item() / len(images), rel_tol=1e-5)


def test_batch_sum_and_pixel_mean_convert(model, images, rows):
    per_image = row(rows, "bce")
    assert math.isclose(row(rows, "bce_batch"), per_image * cv.BATCH, rel_tol=1e-9)
    terms = cv.image_terms(model, images, C, seed=3)
    assert math.isclose(row(rows, "bce_pixel") * 784, terms["bce"].double().mean().item(),
                        rel_tol=1e-6)
    assert math.isclose(row(rows, "sq_err"), terms["sq_err"].double().mean().item()
                        + terms["kl"].double().mean().item(), rel_tol=1e-6)
    assert torch.allclose(terms["recon"] * 2 * C, terms["sq_err"])


def test_bce_never_below_its_floor(model, images):
    terms = cv.image_terms(model, images, C)
    assert (terms["bce"] >= terms["bce_floor"] - 1e-3).all()
    binary = (images > 0.5).float()
    assert cv.image_terms(model, binary, C)["bce_floor"].abs().max() == 0  # 0/1 pixels can be scored perfectly


def test_monte_carlo_kl_matches_closed_form(model, images):
    """The one-sample KL is unbiased: over many codes of the same images its mean is the closed form."""
    few = images[:3].repeat_interleave(4000, dim=0)
    terms = cv.image_terms(model, few, C, seed=5)
    mc, closed = terms["kl_mc"].view(3, -1), terms["kl"].view(3, -1)[:, 0]
    error = mc.std(1) / math.sqrt(mc.shape[1])
    assert ((mc.mean(1) - closed).abs() < 5 * error + 1e-6).all()
    assert (mc.std(1) > 0).all()


def test_kl_per_batch(model, images):
    closed, mc = cv.kl_per_batch(model, images, batch_size=100)
    assert closed.shape == mc.shape == (3,)
    with pytest.raises(ConfigError):
        cv.kl_per_batch(model, images[:50], batch_size=100)


def test_tensorflow_row_is_an_elbo_on_thresholded_pixels(model, images, rows):
    binary = (images > 0.5).float()
    terms = cv.image_terms(model, binary, C, seed=3)
    expected = -(terms["bce"] + terms["kl_mc"]).double().mean().item()
    assert math.isclose(row(rows, "tf"), expected, rel_tol=1e-6)
    assert row(rows, "tf") < 0


def test_convention_rows_for_a_run(model, images):
    """The table's rows are the conventions of the run's model at its c: name, formula and the value,
    to 0.1 with thousands separated (to 0.001 below 1 in size)."""
    fake_run = SimpleNamespace(model=model, config=SimpleNamespace(c=C))
    table = cv.convention_rows(fake_run, images[:10])
    want = cv.conventions(model, images[:10], C, seed=0)
    assert [cells[:2] for cells in table] == [[r.name, r.formula] for r in want]
    for cells, r in zip(table, want):
        value = float(cells[2].replace(",", ""))
        if abs(r.value) >= 1:
            assert value == pytest.approx(r.value, abs=0.05) and len(cells[2].split(".")[1]) == 1, cells
            assert ("," in cells[2]) == (abs(r.value) >= 1000), cells
        else:
            assert value == pytest.approx(r.value, abs=5e-4) and len(cells[2].split(".")[1]) == 3, cells
    assert any("," in cells[2] for cells in table) and any(abs(r.value) < 1 for r in want)  # both formats shown
    # the conversions name the numbers the rows use (their arithmetic: test_batch_sum_and_pixel_mean_convert)
    how = {source: (target, step) for source, target, step in cv.CONVERSIONS}
    assert how["per image"] == (f"summed over a batch of B ({cv.BATCH} in pytorch/examples)", "multiply by B")
    assert how["BCE averaged over pixels"] == ("BCE summed over pixels", "multiply by D = 784")
    assert how["the book's loss"] == ("−ELBO in nats", "add (D/2) log(2πc)")
    assert how["the book's reconstruction term"] == ("summed squared error", "multiply by 2c")


def test_bad_input(model, images):
    with pytest.raises(ConfigError):
        cv.image_terms(model, images * 2, C)
    with pytest.raises(ConfigError):
        cv.conventions(model, images, 0.0)
