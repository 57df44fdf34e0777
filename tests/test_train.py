import math
import re

import pytest
import torch

from vae_tut.errors import ConfigError, TrainingDiverged
from vae_tut.losses import vae_loss
from vae_tut.models import build_model
from vae_tut.train import (
    MONITOR_SIZE,
    autocast,
    average_loss,
    default_device,
    fit,
    has_convolutions,
    keep_freed_memory,
    make_optimizer,
)


def _blobs(n: int, seed: int = 0) -> torch.Tensor:
    """Small synthetic images (unit tests only): bright squares at random places."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    pos = torch.randint(0, 20, (n, 2), generator=g)
    for i, (r, c) in enumerate(pos.tolist()):
        x[i, 0, r:r + 8, c:c + 8] = 1.0
    return x


def _fit(model, **kw):
    args = dict(c=0.05, lr=0.0025, batch_size=64, epochs=3, seed=0, device="cpu", progress=False)
    args.update(kw)
    return fit(model, _blobs(512), _blobs(200, seed=1), **args)


def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends, "mps", SimpleNamespace(is_available=lambda: False))
    assert default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends, "mps", SimpleNamespace(is_available=lambda: True))
    assert default_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")


def test_fit_learns_and_records_history(monkeypatch):
    import itertools
    from types import SimpleNamespace

    from vae_tut import train

    torch.manual_seed(0)
    model = build_model("mlp", 2)
    before = average_loss(model, _blobs(200, seed=1), 0.05)["total"]
    ticks = itertools.count(0.0, 1.5)  # a clock: each epoch starts and ends 1.5 s apart
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    result = _fit(model, epochs=4)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["train_total"] < result.history[0]["train_total"]
    assert result.test["total"] < before
    assert result.train["total"] == pytest.approx(result.history[-1]["train_total"])
    assert result.test["total"] == pytest.approx(result.test["recon"] + result.test["kl"])
    # seconds add up the epochs (training and monitor), never the final test pass
    assert [h["seconds"] for h in result.history] == [1.5, 3.0, 4.5, 6.0] and result.seconds == 6.0


def test_fit_is_reproducible():
    torch.manual_seed(0)
    a = _fit(build_model("cnn", 2), epochs=1)
    torch.manual_seed(0)
    b = _fit(build_model("cnn", 2), epochs=1)
    assert a.history[0]["train_total"] == b.history[0]["train_total"]
    assert a.test == b.test


def test_resume_gives_the_same_run():
    torch.manual_seed(0)
    whole = build_model("mlp", 2)
    full = _fit(whole, epochs=3)

    saved = []

    def stop_after_first(state):
        saved.append({k: v for k, v in state.items()})
        raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(build_model("mlp", 2), epochs=3, on_epoch_end=stop_after_first)
    resumed_model = build_model("mlp", 2)
    resumed = _fit(resumed_model, epochs=3, resume=saved[0])
    assert [h["train_total"] for h in resumed.history] == [h["train_total"] for h in full.history]
    for p, q in zip(whole.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)


def test_monitor_uses_monitor_size_test_images(monkeypatch):
    from vae_tut import train

    assert MONITOR_SIZE == 100  # the report monitors the loss on 100 test images
    sizes = []
    real = train._average_loss
    monkeypatch.setattr(train, "_average_loss", lambda model, images, *args: sizes.append(len(images))
                        or real(model, images, *args))
    monkeypatch.setattr(train, "MONITOR_SIZE", 7)
    _fit(build_model("mlp", 2), epochs=2)
    assert sizes == [7, 7, 200]  # once per epoch on the monitor set, then the whole test set


def test_non_finite_loss_names_the_epoch_and_keeps_no_checkpoint(monkeypatch):
    from vae_tut import train

    calls = []
    real = train.step_terms

    def nan_in_sixth_batch(*args):
        calls.append(1)
        terms = real(*args)
        return terms._replace(recon=terms.recon * float("nan")) if len(calls) == 6 else terms

    monkeypatch.setattr(train, "step_terms", nan_in_sixth_batch)
    checkpoints = []
    with pytest.raises(TrainingDiverged, match=r"^the loss became nan in epoch 2; the training diverged"):
        fit(build_model("mlp", 2), _blobs(256), _blobs(100), c=0.05, lr=0.001, batch_size=64, epochs=3,
            device="cpu", progress=False, on_epoch_end=checkpoints.append)
    assert len(checkpoints) == 1  # epoch 1 was handed on; the diverged epoch 2 was not


def test_bad_settings():
    for kw, message in [
        ({"lr": 0}, "learning rate must be a finite number > 0, got 0"),
        ({"lr": -1e-3}, "learning rate must be a finite number > 0, got -0.001"),
        ({"lr": float("nan")}, "learning rate must be a finite number > 0, got nan"),
        ({"c": 0}, "decoder variance c must be a finite number > 0, got 0"),
        ({"batch_size": 0}, "batch size must be a whole number from 1 to 1048576, got 0"),
        ({"epochs": 0}, "epochs must be a whole number from 1 to 100000, got 0"),
    ]:
        with pytest.raises(ConfigError) as caught:
            _fit(build_model("mlp", 2), **kw)
        assert str(caught.value) == message, kw


def test_unknown_or_absent_device():
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        _fit(build_model("mlp", 2), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available"):
            _fit(build_model("mlp", 2), device="cuda")


def test_bf16_training_keeps_weights_and_losses_in_float32():
    torch.manual_seed(0)
    model = build_model("cnn", 2)
    result = _fit(model, epochs=2, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(math.isfinite(h["train_total"]) for h in result.history)
    assert result.history[-1]["train_total"] < result.history[0]["train_total"]
    x = _blobs(8)
    with autocast(torch.device("cpu"), "bf16"):
        out = model(x)
    assert out.logits.dtype == torch.bfloat16  # the decoder's arithmetic ran in bf16 ...
    assert out.mean.dtype == out.var.dtype == out.z.dtype == torch.float32  # ... the code did not
    terms = vae_loss(x, out.logits, out.mean, out.var, 0.05)
    assert terms.recon.dtype == terms.kl.dtype == torch.float32


def test_bf16_and_fp32_agree_to_bf16_rounding_on_one_batch():
    torch.manual_seed(0)
    model = build_model("cnn", 2).eval()
    x = _blobs(64)
    with torch.no_grad():
        exact = model.decode(model.encode(x)[0])
        with autocast(torch.device("cpu"), "bf16"):
            rounded = model.decode(model.encode(x)[0]).float()
    assert not torch.equal(exact, rounded)
    assert torch.allclose(exact, rounded, rtol=0.05, atol=0.05)


def test_convolutional_models_train_channels_last():
    model = build_model("cnn", 2)
    assert has_convolutions(model) and not has_convolutions(build_model("mlp", 2))
    _fit(model, epochs=1)
    conv = model.encoder.conv_layers[3].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_fused_adam_is_the_same_update_as_the_default():
    torch.manual_seed(0)
    a = build_model("mlp", 2)
    b = build_model("mlp", 2)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.Adam(a.parameters(), lr=0.01)
    opt_b = make_optimizer(b, 0.01, torch.device("cpu"))
    x = _blobs(32)
    for model, opt in ((a, opt_a), (b, opt_b)):
        for _ in range(3):
            torch.manual_seed(1)
            out = model(x)
            opt.zero_grad()
            vae_loss(x, out.logits, out.mean, out.var, 0.05).total.backward()
            opt.step()
    # the two kernels round differently, nothing more: every weight agrees to float32 noise
    gap = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
    assert gap < 1e-5, gap


def test_keep_freed_memory_takes_effect_on_glibc_only(monkeypatch):
    import ctypes
    import platform

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc

    def no_library(*args, **kwargs):
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    assert keep_freed_memory() is False


def test_unknown_precision():
    with pytest.raises(ConfigError, match="unknown precision .fp16.; choose one of: fp32, bf16, auto"):
        _fit(build_model("mlp", 2), precision="fp16")


def test_history_keeps_the_last_batch_terms():
    torch.manual_seed(0)
    model = build_model("mlp", 2)
    result = _fit(model, epochs=1, batch_size=100)  # 512 images: the last batch holds 12
    row = result.history[-1]
    assert row["last_recon"] > 0 and row["last_kl"] >= 0
    assert row["last_recon"] != pytest.approx(row["train_recon"], rel=1e-6)


def test_bernoulli_training_sees_only_binary_images(monkeypatch):
    from vae_tut import train

    seen = []
    real = train.step_terms

    def spy(x, *args):
        seen.append((set(x.unique().tolist()), args[4]))
        return real(x, *args)

    monkeypatch.setattr(train, "step_terms", spy)
    torch.manual_seed(0)
    grey = _blobs(256) * 0.5  # every pixel is 0 or 0.5: binarised it is 0 or 1
    fit(build_model("mlp", 2), grey, _blobs(100) * 0.5, c=0.05, lr=0.001, batch_size=64, epochs=1,
        device="cpu", progress=False, likelihood="bernoulli")
    assert seen and all(values <= {0.0, 1.0} and lik == "bernoulli" for values, lik in seen)
    assert any(1.0 in values for values, _ in seen)


def test_kl_variant_changes_the_trained_term():
    torch.manual_seed(0)
    exact = _fit(build_model("mlp", 2), epochs=1)
    torch.manual_seed(0)
    per_pixel = _fit(build_model("mlp", 2), epochs=1, kl_variant="mean-over-pixels")
    # the same first batch: its KL term is the exact one divided by 784
    assert per_pixel.history[0]["train_kl"] < exact.history[0]["train_kl"] / 100


def test_sub_seeds_give_each_random_stream_its_own_numbers():
    from vae_tut.train import sub_seed

    streams = ("init", "noise", "order", "monitor")
    seeds = {(s, name): sub_seed(s, name) for s in (0, 1) for name in streams}
    assert len(set(seeds.values())) == len(seeds)                     # no two streams share a seed
    assert all(0 <= v < 2**63 for v in seeds.values()) and sub_seed(0, "init") == seeds[0, "init"]
    torch.manual_seed(sub_seed(0, "init"))
    weights = torch.randn(100)
    torch.manual_seed(sub_seed(0, "noise"))
    assert not torch.allclose(weights, torch.randn(100))             # noise does not replay the weights


def test_seeds_outside_torch_range_are_refused():
    from vae_tut.experiments import RunConfig

    for seed in (-1, 2**32, 2**64, 1.5, True):
        with pytest.raises(ConfigError) as caught:
            RunConfig(seed=seed)
        assert str(caught.value) == f"seed must be a whole number from 0 to 4294967295, got {seed!r}"


def test_fit_refuses_what_it_cannot_train():
    """A model that is not one of vae_tut's, a learned c with another likelihood (it would stay untrained), a
    likelihood that needs a learned c on a model without one, learn_c that is not a bool: one line each."""
    cases = [
        (lambda: fit(None, _blobs(8), _blobs(4), c=0.05, lr=1e-3, batch_size=4, epochs=1),
         "fit trains a model of vae_tut.models.build_model, got NoneType"),
        (lambda: _fit(build_model("mlp", 2, learn_c=True)), "a model with a learned decoder variance"),
        (lambda: _fit(build_model("mlp", 2), likelihood="gaussian-learned"), "a model with a learned decoder variance"),
        (lambda: build_model("mlp", 2, learn_c="no"), "learn_c must be True or False, got 'no'"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            call()
