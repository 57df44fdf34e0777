"""vae_tut.analysis.loss_in_batchnorm_mode: a test loss with batch normalisation in either mode (chapter 6)."""

import pytest
import torch

from vae_tut.analysis import loss_in_batchnorm_mode
from vae_tut.errors import ConfigError
from vae_tut.models import build_model
from vae_tut.train import average_loss


def images(n: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("cnn", 2)
    model.train()
    with torch.no_grad():  # a few passes give the running averages something other than 0 and 1
        for _ in range(3):
            model(images(64, seed=1))
    return model.eval()


def test_terms_add_up_and_are_reproducible():
    model, x = cnn(), images()
    for mode in ("train", "eval"):
        a = loss_in_batchnorm_mode(model, x, 0.05, mode, batch_size=16, seed=3)
        assert a["total"] == pytest.approx(a["recon"] + a["kl"])
        assert a == loss_in_batchnorm_mode(model, x, 0.05, mode, batch_size=16, seed=3)


def test_model_is_left_unchanged():
    model, x = cnn(), images()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss_in_batchnorm_mode(model, x, 0.05, "train", batch_size=8)
    assert not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model.train()
    loss_in_batchnorm_mode(model, x, 0.05, "eval")
    assert model.training


def test_eval_mode_ignores_the_batches_and_train_mode_does_not():
    model, x = cnn(), images()
    eval_small = loss_in_batchnorm_mode(model, x, 0.05, "eval", batch_size=4)
    eval_whole = loss_in_batchnorm_mode(model, x, 0.05, "eval", batch_size=40)
    assert eval_small["total"] == pytest.approx(eval_whole["total"], rel=1e-5)
    train_small = loss_in_batchnorm_mode(model, x, 0.05, "train", batch_size=4)
    train_whole = loss_in_batchnorm_mode(model, x, 0.05, "train", batch_size=40)
    assert abs(train_small["total"] - train_whole["total"]) > 1e-3 * train_whole["total"]
    assert abs(train_whole["total"] - eval_whole["total"]) > 1e-3 * eval_whole["total"]


def test_eval_mode_matches_the_books_test_loss_on_average():
    # average_loss draws its own noise: over many images the two agree within the noise of one draw
    model, x = cnn(), images(400, seed=2)
    ours = loss_in_batchnorm_mode(model, x, 0.05, "eval")
    torch.manual_seed(0)
    book = average_loss(model, x, 0.05)
    assert ours["recon"] == pytest.approx(book["recon"], rel=0.02)
    assert ours["kl"] == pytest.approx(book["kl"], rel=0.05)


def test_a_model_without_batch_norm_gives_the_same_loss_in_both_modes():
    torch.manual_seed(0)
    mlp, x = build_model("mlp", 2).eval(), images()
    a = loss_in_batchnorm_mode(mlp, x, 0.05, "train", batch_size=8)
    b = loss_in_batchnorm_mode(mlp, x, 0.05, "eval", batch_size=8)
    assert a["total"] == pytest.approx(b["total"], rel=1e-6)


@pytest.mark.parametrize("kwargs", [{"mode": "training"}, {"batch_size": 0}, {"c": 0.0}, {"seed": -1}])
def test_bad_arguments(kwargs):
    args = {"model": cnn(), "images": images(), "c": 0.05, "mode": "eval", **kwargs}
    with pytest.raises(ConfigError):
        loss_in_batchnorm_mode(**args)


def test_bad_model_and_images():
    with pytest.raises(ConfigError):
        loss_in_batchnorm_mode(torch.nn.Linear(2, 2), images(), 0.05, "eval")
    with pytest.raises(ConfigError):
        loss_in_batchnorm_mode(cnn(), images() * 2, 0.05, "eval")
