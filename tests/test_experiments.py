import json

import pytest
import torch

from vae_tut import experiments
from vae_tut.errors import CacheError, ConfigError
from vae_tut.experiments import (AE_BASELINE, BASE, C_GRID, LATENT, REPORT, SEED_GRID, RunConfig,
                                 cache_dir, grid, results_table, run)


def test_report_grid_settings():
    assert set(BASE) == {"mlp-mnist", "mlp-fashion-mnist", "cnn-mnist", "cnn-fashion-mnist"}
    for cfg in BASE.values():
        assert (cfg.z, cfg.c, cfg.epochs, cfg.batch_size) == (2, 0.05, 15, 256)
        assert cfg.lr == (0.0025 if cfg.arch == "mlp" else 0.0015)
    assert sorted({c.z for c in LATENT.values()}) == [1, 2, 3, 5, 10, 20]
    assert {c.arch for c in LATENT.values()} == {"mlp", "cnn"}
    assert sorted(c.c for c in C_GRID.values()) == [0.0001, 0.001, 0.01, 0.05, 1.0]
    assert AE_BASELINE.kind == "ae"
    assert set(REPORT) <= set(BASE)
    assert sorted(c.seed for c in SEED_GRID.values()) == [0, 1, 2, 3, 4]
    assert len(grid()) == 4 + 12 + 5 + 1 + 5 + 2
    # the MLP base run reappears as z=2, c=0.05 and seed 0; the CNN base run as z=2
    assert len(set(grid().values())) == 29 - 3 - 1


def test_default_precision_is_bf16_for_the_cnn_only():
    assert RunConfig(arch="cnn").precision == "bf16"
    assert RunConfig(arch="mlp").precision == "fp32"
    assert RunConfig(arch="cnn", precision="fp32").precision == "fp32"
    assert RunConfig(arch="cnn") == RunConfig(arch="cnn", precision="bf16")


def test_key_depends_on_every_field_and_on_code(monkeypatch):
    base = RunConfig()
    assert base.key() == RunConfig().key()
    changed = [RunConfig(arch="cnn"), RunConfig(dataset="fashion-mnist"), RunConfig(z=3),
               RunConfig(c=0.1), RunConfig(lr=0.001), RunConfig(batch_size=128),
               RunConfig(epochs=3), RunConfig(seed=1), RunConfig(kind="ae"), base.quick(),
               RunConfig(precision="bf16")]
    keys = {c.key() for c in changed}
    assert len(keys) == len(changed) and base.key() not in keys
    before = base.key()
    monkeypatch.setattr(experiments, "code_version", lambda: "edited-source")
    assert base.key() != before


def test_quick_mode(monkeypatch):
    cfg = RunConfig()
    assert cfg.resolved() == cfg
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    quick = cfg.resolved()
    assert quick.is_quick and quick.epochs == 2 and quick.train_size == 2048
    assert "QUICK MODE" in quick.label() and "QUICK MODE" not in cfg.label()


@pytest.mark.parametrize("kw, match", [
    ({"arch": "rnn"}, "unknown architecture"), ({"dataset": "cifar"}, "unknown dataset"),
    ({"z": 0}, "latent size"), ({"z": -2}, "latent size"), ({"c": 0}, "decoder variance"),
    ({"c": -1}, "decoder variance"), ({"lr": 0}, "learning rate"), ({"lr": -0.1}, "learning rate"),
    ({"batch_size": 0}, "batch size"), ({"epochs": 0}, "epochs"), ({"seed": -1}, "seed"),
    ({"kind": "gan"}, "model kind"), ({"precision": "fp16"}, "unknown precision 'fp16'"),
])
def test_bad_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(**kw)


def test_cache_round_trip(real_data, monkeypatch):
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    first = run(RunConfig())
    assert not first.from_cache and first.config.is_quick
    entry = cache_dir() / first.config.key()
    assert (entry / "model.pt").exists() and (entry / "result.json").exists()
    second = run(RunConfig())
    assert second.from_cache
    assert second.train == first.train and second.test == first.test
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    assert "QUICK MODE" in results_table({"mlp-mnist": second})


def test_interrupted_run_leaves_no_entry_and_resumes(real_data, monkeypatch):
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    cfg = RunConfig().resolved()
    uninterrupted = run(cfg, cache=cache_dir() / "other")

    real_fit = experiments.train.fit

    def fit_then_interrupt(*args, on_epoch_end, **kw):
        def hook(state):
            on_epoch_end(state)
            raise KeyboardInterrupt
        return real_fit(*args, on_epoch_end=hook, **kw)

    monkeypatch.setattr(experiments.train, "fit", fit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert not (cache_dir() / cfg.key()).exists()
    assert (cache_dir() / f".partial-{cfg.key()}" / "state.pt").exists()
    assert not list(cache_dir().glob(".tmp-*"))
    monkeypatch.setattr(experiments.train, "fit", real_fit)
    resumed = run(cfg)
    assert [h["train_total"] for h in resumed.history] == \
        [h["train_total"] for h in uninterrupted.history]
    assert not (cache_dir() / f".partial-{cfg.key()}").exists()


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "entry"

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(experiments.torch, "save", broken_save)
    with pytest.raises(OSError):
        experiments._write_atomic_dir(target, {"model.pt": {}, "result.json": {}})
    assert list(tmp_path.iterdir()) == []


def _fake_entry(cfg: RunConfig, **override) -> None:
    """Write a cache entry for ``cfg`` with an untrained model (no training needed)."""
    model = experiments.build_model(cfg.arch, cfg.z, cfg.kind)
    meta = {"config": cfg.as_dict(), "code_version": experiments.code_version(), "history": [],
            "train": {}, "test": {}, "seconds": 0.0}
    meta.update(override)
    experiments._write_atomic_dir(cache_dir() / cfg.key(),
                                  {"model.pt": model.state_dict(), "result.json": meta})


def test_loads_entry_written_for_config():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    assert run(cfg).from_cache


def test_corrupt_cache_entry():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    (cache_dir() / cfg.key() / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError, match="unreadable"):
        run(cfg)


def test_entry_of_another_config():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg, config=RunConfig(epochs=2).as_dict())
    with pytest.raises(CacheError, match="another config"):
        run(cfg)


def test_weights_of_another_architecture():
    cfg = RunConfig(epochs=1)
    other = experiments.build_model("cnn", 2)
    _fake_entry(cfg)
    torch.save(other.state_dict(), cache_dir() / cfg.key() / "model.pt")
    with pytest.raises(CacheError, match="do not fit"):
        run(cfg)


def test_unsafe_pickle_is_refused(tmp_path):
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, cache_dir() / cfg.key() / "model.pt")
    with pytest.raises(CacheError, match="unreadable"):
        run(cfg)
