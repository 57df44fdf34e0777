import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from vae_tut import experiments, store
from vae_tut.errors import CacheError, ConfigError
from vae_tut.experiments import (
    AE_BASELINE,
    BASE,
    C_GRID,
    GRIDS,
    LATENT,
    REPORT,
    SEED_GRID,
    RunConfig,
    cache_dir,
    grid,
    run,
)
from vae_tut.report import results_table


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
    # the report-KL candidate c=0.01 on MNIST is the c grid's run, under the same name
    assert grid("report-kl")["mlp-mnist-c0.01"] == C_GRID["mlp-mnist-c0.01"]
    # every named grid is part of the whole grid, and a name means one config wherever it appears
    merged = grid()
    for name in GRIDS:
        for run_name, cfg in grid(name).items():
            assert merged[run_name] == cfg
    # configs that repeat under several names are trained once: the base MLP run is also z=2 and seed 0
    assert BASE["mlp-mnist"] == LATENT["mlp-mnist-z2"] == SEED_GRID["mlp-mnist-seed0"]
    assert len(set(merged.values())) < len(merged)


def test_report_candidates_change_one_thing_each():
    from vae_tut.experiments import BERNOULLI, LATENT_SEEDS, REPORT_KL
    for name, cfg in REPORT_KL.items():
        base = BASE[name.split("-c0")[0].split("-kl-")[0].split("-hidden")[0]]
        changed = {f for f in base.as_dict() if getattr(cfg, f) != getattr(base, f)}
        assert len(changed) == 1 and changed <= {"c", "kl_variant", "hidden"}, name
    assert {cfg.kl_variant for cfg in REPORT_KL.values()} >= {"var-as-std", "var-as-logvar",
                                                              "mean-over-dims", "mean-over-pixels"}
    assert all(cfg.likelihood == "bernoulli" and cfg.arch == "mlp" for cfg in BERNOULLI.values())
    assert sorted({(c.arch, c.z) for c in LATENT_SEEDS.values()}) == [
        ("cnn", 10), ("cnn", 20), ("mlp", 10), ("mlp", 20)]
    assert sorted({c.seed for c in LATENT_SEEDS.values()}) == [1, 2]


def test_variant_labels_and_bad_variants():
    assert "KL var-as-std" in RunConfig(kl_variant="var-as-std").label()
    assert "hidden 20" in RunConfig(hidden=20).label()
    bern = RunConfig(likelihood="bernoulli").label()
    assert "Bernoulli decoder" in bern and "c=" not in bern
    for bad, match in [({"kl_variant": "halved"}, "unknown KL variant"),
                       ({"likelihood": "poisson"}, "unknown decoder likelihood"),
                       ({"arch": "cnn", "hidden": 20}, "MLP only"),
                       ({"hidden": 0}, "hidden width"),
                       ({"kind": "ae", "likelihood": "bernoulli"}, "autoencoder")]:
        with pytest.raises(ConfigError, match=match):
            RunConfig(**bad)


def _cpu_capability(monkeypatch, capability: str, bf16_units: bool) -> None:
    """Pretend the CPU is of another kind: torch's kernel level and its bf16 instructions."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: bf16_units)


def test_default_precision_is_auto_for_the_cnn_only():
    assert RunConfig(arch="cnn").precision == "auto"
    assert RunConfig(arch="mlp").precision == "fp32"
    assert RunConfig(arch="cnn", precision="fp32").precision == "fp32"
    assert RunConfig(arch="cnn") == RunConfig(arch="cnn", precision="auto")


def test_auto_precision_follows_the_cpu(monkeypatch):
    for capability, bf16_units, expected in [
        ("AVX2", False, "fp32"),      # an AVX2-only laptop or server: bf16 would be emulated
        ("AVX2", True, "fp32"),       # AVX2 kernels forced (ATEN_CPU_CAPABILITY=avx2)
        ("AVX512", False, "fp32"),    # AVX-512 without bf16 instructions
        ("AVX512", True, "bf16"),     # AVX512_BF16 or AMX
        ("DEFAULT", False, "fp32"),
    ]:
        _cpu_capability(monkeypatch, capability, bf16_units)
        cnn = RunConfig(arch="cnn").resolved("cpu")
        assert cnn.precision == expected and cnn.label().endswith(expected), (capability, bf16_units)
        assert RunConfig(arch="mlp").resolved("cpu").precision == "fp32"
        assert RunConfig(arch="cnn", precision="bf16").resolved("cpu").precision == "bf16"  # asked for


def test_cpu_without_bf16_trains_and_caches_the_cnn_in_fp32(tiny_data, monkeypatch):
    _cpu_capability(monkeypatch, "AVX2", False)
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    seen = []
    real_autocast = experiments.train.autocast
    monkeypatch.setattr(experiments.train, "autocast",
                        lambda device, precision: seen.append(precision) or real_autocast(device, precision))
    trained = run(RunConfig(arch="cnn", epochs=1), device="cpu")
    assert set(seen) == {"fp32"}
    assert "fp32" in trained.config.label() and "fp32" in trained.summary()["run"]
    entry = cache_dir() / trained.config.key()
    meta = json.loads((entry / "result.json").read_text())
    assert meta["config"]["precision"] == "fp32" and meta["device"] == "cpu"
    assert meta["torch"] == torch.__version__


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
    monkeypatch.setattr(experiments, "CODE_VERSION", "edited-source")
    assert base.key() != before


def test_key_depends_on_torch_version_and_device(monkeypatch):
    base = RunConfig()
    assert base.key("cpu") == base.key(torch.device("cpu"))
    digest = lambda key: key.rsplit("-", 1)[1]  # noqa: E731
    cpu = experiments.run_key(base.as_dict(), "cpu")
    assert store.key_digest(cpu) == digest(base.key("cpu"))
    assert store.key_digest({**cpu, "device": "cuda"}) != digest(base.key("cpu"))
    before = base.key("cpu")
    monkeypatch.setattr(experiments.torch, "__version__", "9.9.9")
    assert base.key("cpu") != before


def test_an_edit_after_import_cannot_change_the_key_of_the_running_code(tmp_path):
    """The code version is taken when the package is imported: editing a module's file
    afterwards leaves the running process's key alone; a fresh process sees the edit."""
    import shutil
    import subprocess
    import sys

    package = Path(experiments.__file__).parent
    shutil.copytree(package, tmp_path / "vae_tut", ignore=shutil.ignore_patterns("__pycache__"))
    losses = tmp_path / "vae_tut" / "losses.py"
    script = ("import sys, pathlib\n"
              "from vae_tut.experiments import RunConfig\n"
              "before = RunConfig().key('cpu')\n"
              "path = pathlib.Path(sys.argv[1])\n"
              "if len(sys.argv) > 2: path.write_text(path.read_text() + '\\nEDITED = 1\\n')\n"
              "print(before, RunConfig().key('cpu'))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run_ = lambda *args: subprocess.run([sys.executable, "-c", script, str(losses), *args],  # noqa: E731
                                        capture_output=True, text=True, env=env, cwd=tmp_path,
                                        check=True).stdout.split()
    first, after_edit = run_("edit")
    assert first == after_edit                       # the running process keeps its key
    fresh, _ = run_()
    assert fresh != first                            # a new process runs the edited code: a new key


def _edited(function, old: str, new: str, folder: Path):
    """``function`` recompiled from a copy of its source file with ``old`` replaced by ``new``."""
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(function))
    assert old in source
    path = folder / f"edited_{function.__name__}.py"
    path.write_text(source.replace(old, new))
    namespace = dict(function.__globals__)
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace[function.__name__]


def test_docstring_or_comment_edit_keeps_the_key(monkeypatch, tmp_path):
    from vae_tut import models, store

    before = RunConfig().key()
    source = Path(models.__file__).read_text()
    edited = source.replace('"""The report\'s encoder', '"""Reworded: the report\'s encoder', 1)
    edited = edited.replace("# fp32 from here on", "# a reworded comment", 1)
    assert edited != source
    assert store.source_digest([edited]) == store.source_digest([source])
    assert store.source_digest([source.replace("nn.ELU()", "nn.ReLU()", 1)]) != store.source_digest([source])
    edited_load = _edited(experiments.data.load_dataset, "Images ``[N, 1, 28, 28]``", "Images", tmp_path)
    assert store.code_version([edited_load]) == store.code_version([experiments.data.load_dataset])
    assert RunConfig().key() == before


@pytest.mark.parametrize("function, old, new", [
    ("load_dataset", "div_(255.0)", "div_(256.0)"),                      # the pixel scaling
    ("_train", "train_x[: config.train_size]", "train_x[-config.train_size :]"),  # the slicing in run
])
def test_compute_path_edit_changes_the_key(tmp_path, function, old, new):
    from vae_tut import store

    owner = experiments.data if function == "load_dataset" else experiments
    original = getattr(owner, function)
    assert store.code_version([_edited(original, old, new, tmp_path)]) != store.code_version([original])


def test_code_version_is_pinned_and_independent_of_layout():
    """The digest of a fixed snippet is committed here: it must not change with the Python
    version (3.10-3.13 parse to different ``ast.dump`` texts) or with comments and docstrings."""
    from vae_tut import store

    snippet = 'def f(x: int) -> int:\n    "doc"\n    return x + 1  # c\n'
    assert store.source_digest([snippet]) == "09262dbe984bae1f"
    assert store.source_digest(["def f(x: int) -> int:\n    return (x +\n            1)\n"]) == "09262dbe984bae1f"
    assert store.source_digest(["def f(x: int) -> int:\n    return x + 2\n"]) != "09262dbe984bae1f"


def _pyenv_root() -> str:
    """``pyenv root`` (where pyenv keeps its Pythons), else ``$PYENV_ROOT``, else ``~/.pyenv``."""
    import shutil
    import subprocess

    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def _other_pythons() -> list[str]:
    """Interpreters of Python 3.10-3.13 other than this one: pyenv's, or ``python3.1x`` on the PATH."""
    import glob
    import shutil
    import sys

    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = {}
    root = _pyenv_root()
    for minor in ("3.10", "3.11", "3.12", "3.13"):
        pyenv = sorted(glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin", "python3")))
        path = pyenv[-1] if pyenv else shutil.which(f"python{minor}")
        if minor != mine and path:
            found[minor] = path
    return list(found.values())


def test_code_version_is_the_same_on_every_python():
    """The run key's code digest, computed by store's own three functions under every other
    Python 3.10-3.13 on this machine from the same sources, equals this interpreter's: a run cache
    made here serves Colab's Python, and the other way round."""
    import ast
    import inspect
    import subprocess

    others = _other_pythons()
    if not others:
        pytest.skip("no other Python 3.10-3.13 on this machine")
    text = Path(store.__file__).read_text()
    wanted = {"_without_docstrings", "_canonical", "source_digest"}
    parts = [ast.get_source_segment(text, node) for node in ast.parse(text).body
             if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert len(parts) == 3
    program = "\n\n".join(["from __future__ import annotations\nimport ast, hashlib, json, sys, textwrap\n"
                            "from collections.abc import Iterable", *parts,
                            "print(*(source_digest(s) for s in json.load(sys.stdin)))"])
    sources = [[inspect.getsource(obj) for obj in experiments.compute_path()],
               ['def f(x: int) -> int:\n    "doc"\n    return x + 1  # c\n'], [NESTED_SPEC]]
    here = [experiments.CODE_VERSION, "09262dbe984bae1f", store.source_digest([NESTED_SPEC])]
    for python in others:
        done = subprocess.run([python, "-I", "-c", program], input=json.dumps(sources), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == here, python


# 3.12 alone parses a nested format spec with an extra empty string in the spec's parts
NESTED_SPEC = 'def g(a, w, p):\n    return f"{a:>{w}}|{a:{w}.{p}f}|{a:{w}}x"\n'
NESTED_SPEC_DIGEST = "e1d0fe1ebbd5d89a"


def test_a_nested_format_spec_has_one_digest():
    """Pinned, so that it is the same under every Python 3.10-3.13 (the test above runs it under
    the others); an empty f-string part is left out of the digest, a non-empty one is not."""
    assert store.source_digest([NESTED_SPEC]) == NESTED_SPEC_DIGEST
    assert store.source_digest([NESTED_SPEC.replace("}x", "}y")]) != NESTED_SPEC_DIGEST
    assert store.source_digest([NESTED_SPEC.replace("}x", "}")]) != NESTED_SPEC_DIGEST


def test_quick_mode(monkeypatch):
    cfg = RunConfig()
    assert cfg.resolved() == cfg
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    quick = cfg.resolved()
    assert quick.is_quick and quick.epochs == 1 and quick.train_size == 2048  # pytorch/examples: --epochs 1
    assert "QUICK MODE" in quick.label() and "QUICK MODE" not in cfg.label()


def test_bad_config():
    for kw, message in [
        ({"arch": "rnn"}, "unknown architecture 'rnn'; choose one of: mlp, cnn"),
        ({"dataset": "cifar"}, "unknown dataset 'cifar'; choose one of: mnist, fashion-mnist"),
        ({"z": 0}, "latent size z must be a whole number from 1 to 4096, got 0"),
        ({"z": -2}, "latent size z must be a whole number from 1 to 4096, got -2"),
        ({"c": 0}, "decoder variance c must be a finite number > 0, got 0"),
        ({"c": -1}, "decoder variance c must be a finite number > 0, got -1"),
        ({"lr": 0}, "learning rate must be a finite number > 0, got 0"),
        ({"lr": -0.1}, "learning rate must be a finite number > 0, got -0.1"),
        ({"batch_size": 0}, "batch size must be a whole number from 1 to 1048576, got 0"),
        ({"epochs": 0}, "epochs must be a whole number from 1 to 100000, got 0"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, got -1"),
        ({"kind": "gan"}, "unknown model kind 'gan'; choose one of: vae, ae, cvae"),
        ({"precision": "fp16"}, "unknown precision 'fp16'; choose one of: fp32, bf16, auto"),
    ]:
        with pytest.raises(ConfigError) as caught:
            RunConfig(**kw)
        assert str(caught.value) == message, kw


def test_cache_round_trip(tiny_data, monkeypatch):
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


def test_interrupted_run_leaves_no_entry_and_resumes(tiny_data, monkeypatch):
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

    monkeypatch.setattr(store.torch, "save", broken_save)
    with pytest.raises(CacheError, match="disk full"):
        store.write_atomic_dir(target, {"model.pt": {}, "result.json": {}})
    assert list(tmp_path.iterdir()) == []


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _fake_entry(cfg: RunConfig, weights: bytes | None = None, **override) -> None:
    """Write a cache entry for ``cfg`` (default: an untrained model's weights) with a valid checksum."""
    if weights is None:
        weights = _saved(experiments.build_model(cfg.arch, cfg.z, cfg.kind).state_dict())
    buffer = io.BytesIO(weights)
    meta = {"config": cfg.as_dict(), "code_version": experiments.code_version(), "history": [],
            "train": {}, "test": {}, "seconds": 0.0, "torch": torch.__version__, "device": "cpu"}
    meta["checksum"] = experiments._checksum(meta, buffer.getvalue())
    meta.update(override)
    store.write_atomic_dir(cache_dir() / cfg.key(), {"model.pt": buffer.getvalue(), "result.json": meta})


def test_loads_entry_written_for_config():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    assert run(cfg).from_cache


def test_corrupt_cache_entry():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    (cache_dir() / cfg.key() / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError, match="checksum"):
        run(cfg)


def test_entry_of_another_config():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg, config=RunConfig(epochs=2).as_dict())
    with pytest.raises(CacheError, match="another config"):
        run(cfg)


def test_weights_of_another_architecture():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg, _saved(experiments.build_model("cnn", 2).state_dict()))
    with pytest.raises(CacheError, match="do not fit"):
        run(cfg)


def test_edited_result_is_refused():
    cfg = RunConfig(epochs=1)
    path = cache_dir() / cfg.key() / "result.json"
    for edit, match in [
        (lambda meta: meta["train"].update(total=1.0), "checksum"),
        (lambda meta: meta.pop("history"), "result.json lacks history, train, test, seconds"),
        (lambda meta: [meta.pop(k) for k in list(meta)], "result.json lacks history, train, test, seconds"),
    ]:
        shutil.rmtree(path.parent, ignore_errors=True)
        _fake_entry(cfg, train={"total": 2.0})
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta or [1, 2]))
        with pytest.raises(CacheError, match=match):
            run(cfg)


def test_a_result_of_the_wrong_shape_is_one_line():
    cfg = RunConfig(epochs=1)
    for text, match in [
        ("[1, 2]", "result.json lacks history, train, test, seconds"),    # valid JSON of the wrong shape
        ('"a run"', "result.json lacks history, train, test, seconds"),
        ("[" * 100_000 + "]" * 100_000, "is unreadable (RecursionError)"),  # nested deeper than the parser goes
    ]:
        shutil.rmtree(cache_dir() / cfg.key(), ignore_errors=True)
        _fake_entry(cfg)
        (cache_dir() / cfg.key() / "result.json").write_text(text)
        with pytest.raises(CacheError, match=re.escape(match)) as caught:
            run(cfg)
        assert str(cache_dir() / cfg.key()) in str(caught.value) and "\n" not in str(caught.value)


def test_a_config_or_root_of_the_wrong_type_is_one_line():
    for call, match in [
        (lambda: run("mlp"), "config must be a RunConfig (e.g. RunConfig(arch='mlp') or grid()['mlp-mnist']), "
                             "got a str 'mlp'"),
        (lambda: run({"arch": "mlp"}), "config must be a RunConfig (e.g. RunConfig(arch='mlp') or "
                                       "grid()['mlp-mnist']), got a dict"),
        (lambda: cache_dir(5), "the runs folder must be a path (str or pathlib.Path), got int"),
        (lambda: run(RunConfig(epochs=1), cache=5.0),
         "the runs folder must be a path (str or pathlib.Path), got float"),
        (lambda: store.root("data", 5), "the data folder must be a path (str or pathlib.Path), got int"),
    ]:
        with pytest.raises(ConfigError) as caught:
            call()
        assert str(caught.value) == match


def test_nan_weights_are_refused():
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    weights = cache_dir() / cfg.key() / "model.pt"
    state = torch.load(weights, weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in state.items()}, weights)
    with pytest.raises(CacheError, match="checksum"):
        run(cfg)


def test_run_made_under_another_torch_says_so_in_one_line(capsys):
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)
    path = cache_dir() / cfg.key() / "result.json"
    meta = json.loads(path.read_text())
    meta["torch"] = "1.0.0"
    meta["checksum"] = experiments._checksum(meta, (path.parent / "model.pt").read_bytes())
    path.write_text(json.dumps(meta))
    assert run(cfg, device="cpu").from_cache
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch 1.0.0" in err[0] and torch.__version__ in err[0]


def test_unsafe_pickle_is_refused(tmp_path):
    cfg = RunConfig(epochs=1)
    _fake_entry(cfg)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    _fake_entry(cfg, _saved({"x": Evil()}))
    with pytest.raises(CacheError, match="unreadable"):
        run(cfg)
