"""Every bad input a new user tried (issues "One store, one set of helpers" and "Bad input and
faults, round two"), replayed.

Each gives a clear one-line error (a :class:`~vae_tut.errors.VaeTutError` from the
API, exit status 2 from the command line) or a correct result; none a traceback, a hang
or a silent wrong number. One test per kind of mistake, parametrised over its examples:
bad arguments to the training API, each checker of vae_tut.validation given empty, NaN, float64,
wrong-shape and numpy input and every public function that takes a tensor walked once with the
kind its own door check names (section 5), data files that
cannot be trusted or read (section 1), file-system faults (section 2), damaged exported
decoders (section 3) and on/off variables (section 4). Inputs that need a whole training run
to set up are tested where that run already is: test_store (two trainings into one cache, a
lock held elsewhere), test_experiments (edited or truncated cache entries), test_data (a
corrupt .gz, a partial set, torchvision's processed files) and test_cli (--out).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import vae_tut  # noqa: E402
from vae_tut import (  # noqa: E402
    analysis,
    classifier,
    cli,
    conventions,
    data,
    evaluate,
    figures,
    latent,
    likelihood,
    losses,
    plots,
    train,
    validation,
    web,
    widgets,
)
from vae_tut.cli import main  # noqa: E402
from vae_tut.errors import CacheError, ConfigError, DataError, TrainingDiverged, VaeTutError  # noqa: E402
from vae_tut.experiments import RunConfig  # noqa: E402
from vae_tut.latent import encode  # noqa: E402
from vae_tut.losses import kl_divergence, reconstruction_loss  # noqa: E402
from vae_tut.models import build_model  # noqa: E402
from vae_tut.train import average_loss, fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

GOOD = torch.rand(8, 1, 28, 28)


def _fit(**kw):
    args = dict(c=0.05, lr=0.001, batch_size=4, epochs=1, device="cpu", progress=False)
    args.update(kw)
    train = args.pop("train", GOOD)
    test = args.pop("test", GOOD)
    return fit(build_model("mlp", 2), train, test, **args)


TRAINING = "training images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], got "
API = {  # the call -> its one-line message, or a distinctive part of it
    "numpy images": (lambda: _fit(train=GOOD.numpy()),
                     TRAINING + "a numpy.ndarray (torch.as_tensor(x).float() converts it)"),
    "uint8 images": (lambda: _fit(train=(GOOD * 255).to(torch.uint8)),
                     TRAINING + "torch.uint8 (divide 0..255 pixels by 255.0)"),
    "0..255 float images": (lambda: _fit(train=GOOD * 255), TRAINING + "values from "),
    "0..255 float images, the hint": (lambda: _fit(train=GOOD * 255), " (divide 0..255 pixels by 255.0)"),
    "NaN pixels": (lambda: _fit(test=GOOD.clone().fill_(float("nan"))),
                   "test images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], got NaN values"),
    "flat images": (lambda: _fit(train=GOOD.flatten(1)), TRAINING + "shape [8, 784]"),
    "32-pixel images into the CNN": (
        lambda: build_model("cnn", 2).encode(torch.rand(2, 1, 32, 32)),
        "the encoder's images must be a float32 tensor [N, 1, 28, 28] of finite values, got shape [2, 1, 32, 32]"),
    "25-pixel images to encode": (
        lambda: encode(build_model("cnn", 2), torch.rand(2, 1, 25, 25)),
        "images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], got shape [2, 1, 25, 25]"),
    "empty training set": (lambda: _fit(train=GOOD[:0]), TRAINING + "no images"),
    "empty test set": (lambda: _fit(test=GOOD[:0]),
                       "test images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], got no images"),
    "average_loss(batch_size=0)": (lambda: average_loss(build_model("mlp", 2), GOOD, 0.05, batch_size=0),
                                   "batch size must be a whole number from 1 to 1048576, got 0"),
    "fit(resume={})": (lambda: _fit(resume={}), "resume must be a checkpoint that fit() passed to on_epoch_end"),
    "fit(lr=True)": (lambda: _fit(lr=True), "learning rate must be a finite number > 0, got True"),
    "fit(batch_size=True)": (lambda: _fit(batch_size=True),
                             "batch size must be a whole number from 1 to 1048576, got True"),
    "fit(seed=-1)": (lambda: _fit(seed=-1), "seed must be a whole number from 0 to 4294967295, got -1"),
    "reconstruction_loss on mismatched shapes": (
        lambda: reconstruction_loss(GOOD, GOOD[:, :, :14], 0.05),
        "images and reconstructions differ in shape: [8, 1, 28, 28] vs [8, 1, 14, 28]"),
    "KL with a zero variance": (lambda: kl_divergence(torch.zeros(3, 2), torch.zeros(3, 2)),
                                "every variance must be > 0 (the KL needs log var)"),
    "KL with a negative variance": (lambda: kl_divergence(torch.zeros(3, 2), -torch.ones(3, 2)),
                                    "every variance must be > 0 (the KL needs log var)"),
    "z = 10^12": (lambda: build_model("mlp", 10**12),
                  "latent size z must be a whole number from 1 to 4096, got 1000000000000"),
}


def _wrong_messages(table, error=VaeTutError):
    """Each ``name: (call, text)`` of ``table`` whose call does not raise ``error`` with a one-line
    message holding ``text``, with what it gave instead (an empty list: every message as pinned)."""
    wrong = []
    for name, (call, text) in table.items():
        try:
            call()
        except error as caught:
            if text not in str(caught) or "\n" in str(caught):
                wrong.append(f"{name}: {caught}")
        else:
            wrong.append(f"{name}: no error")
        finally:
            plt.close("all")
    return wrong


def test_api_input_gives_a_clear_error():
    wrong = _wrong_messages(API)
    assert not wrong, "\n".join(wrong)


def _one_line(capsys, argv, text):
    code = None
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1 and text in err[0] and "Traceback" not in err[0], err
    return err[0]


def test_every_package_error_is_one_line_exit_2(capsys, monkeypatch):
    """The command line turns each of the package's error types into its one line and status 2."""
    for error in (ConfigError, DataError, CacheError, TrainingDiverged):
        def fails(args, error=error):
            raise error(f"the {error.__name__} line")

        monkeypatch.setattr(cli, "_cmd_train", fails)
        line = _one_line(capsys, ["train"], f"the {error.__name__} line")
        assert line == f"python -m vae_tut train: error: the {error.__name__} line"


# a cache or data root that is a file: test_cli.test_a_root_that_is_a_file_one_line_exit_2


def test_read_only_cache_without_the_entry(capsys, monkeypatch):
    import filelock

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filelock.FileLock, "acquire", read_only)
    _one_line(capsys, ["train", "--quick", "--epochs", "1"], "cannot write the lock file")


def test_read_only_data_root_with_a_corrupt_file(capsys, tiny_data, tmp_path, monkeypatch):
    raw = data.DATASETS["mnist"].raw_dir(tmp_path)
    shutil.copytree(tiny_data.raw, raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * tiny_data.info.files[3].size)

    def read_only(self, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(raw), "replace", read_only)
    _one_line(capsys, ["data", "--root", str(tmp_path), "--dataset", "mnist", "--no-download"],
              "is corrupt and cannot be moved aside")


def test_no_download_with_three_of_four_files(capsys, tiny_data, tmp_path):
    raw = data.DATASETS["mnist"].raw_dir(tmp_path)
    shutil.copytree(tiny_data.raw, raw)
    (raw / "train-labels-idx1-ubyte").unlink()
    _one_line(capsys, ["data", "--root", str(tmp_path), "--dataset", "mnist", "--no-download"],
              "lacks train-labels-idx1-ubyte")


def test_load_dataset_prepares_missing_data_on_first_use(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "local_sources", lambda name: [tiny_data.raw])
    images, labels = data.load_dataset("mnist", "test", root=tmp_path / "fresh")
    assert torch.equal(images, tiny_data.expected["test"][0]) and torch.equal(labels, tiny_data.expected["test"][1])
    data.check_dataset("mnist", tmp_path / "fresh")


def test_load_dataset_without_sources_or_download_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    with pytest.raises(DataError, match="Get it in one of three ways"):
        data.load_dataset("fashion-mnist", "train", root=tmp_path)


# ---------------------------------------------------------------- section 1: data files

def _unreadable_raw_file(tiny_data, monkeypatch):
    """A raw file with mode 000. Tests run as root, where chmod does not bite: reading it fails instead."""
    target = tiny_data.raw / "train-images-idx3-ubyte"
    target.chmod(0)
    real = os.open

    def refuse(path, *args, **kwargs):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    return ["train", "--quick"], "train-images-idx3-ubyte: cannot be read (Permission denied)"


def _fifo_raw_file(tiny_data):
    """A data file that is a FIFO: refused before it is opened for reading, never a hang."""
    target = tiny_data.raw / "train-images-idx3-ubyte"
    target.unlink()
    os.mkfifo(target)
    return ["train", "--quick"], "train-images-idx3-ubyte: not a regular file (a FIFO, device or folder)"


def _endless_raw_file(tiny_data):
    """A data file that is a link to /dev/zero: refused before a byte is read, never read whole."""
    target = tiny_data.raw / "train-images-idx3-ubyte"
    target.unlink()
    target.symlink_to("/dev/zero")
    return ["train", "--quick"], "train-images-idx3-ubyte: not a regular file (a FIFO, device or folder)"


def _read_only_root_needing_a_copy(tiny_data, monkeypatch, tmp_path):
    """An empty data root that cannot be written, while a local package holds the files."""
    monkeypatch.setattr(data, "local_sources", lambda name: [tiny_data.raw])
    empty = tmp_path / "read-only"
    empty.mkdir()
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if str(self).startswith(str(empty)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    return ["data", "--root", str(empty), "--dataset", "mnist"], "cannot write to the data folder"


def _broken_symlink_root(tiny_data, monkeypatch, tmp_path):
    link = tmp_path / "data-link"
    link.symlink_to(tmp_path / "gone")
    monkeypatch.setenv("VAE_TUT_DATA", str(link))
    return ["train", "--quick"], "is a broken symbolic link"


DATA_FAULTS = {
    "raw file with mode 000": lambda t, m, p: _unreadable_raw_file(t, m),
    "raw file that is a FIFO": lambda t, m, p: _fifo_raw_file(t),
    "raw file linked to /dev/zero": lambda t, m, p: _endless_raw_file(t),
    "read-only root that needs a file copied in": _read_only_root_needing_a_copy,
    "VAE_TUT_DATA a broken symlink": _broken_symlink_root,
}


@pytest.mark.parametrize("name", DATA_FAULTS)
def test_data_faults_one_line(capsys, tiny_data, tmp_path, monkeypatch, name):
    argv, text = DATA_FAULTS[name](tiny_data, monkeypatch, tmp_path)
    _one_line(capsys, argv, text)


# ---------------------------------------------------------------- section 2: file-system faults

LONG = "x" * 300  # one path part over the 255 characters a file system allows


@pytest.mark.parametrize("where", ["--out", "--root", "VAE_TUT_CACHE"])
def test_a_path_part_too_long_is_one_line(capsys, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    if where == "--out":
        argv, text = ["reproduce", "--quick", "--only", "ae", "--out", str(tmp_path / LONG / "t.md")], "--out"
    elif where == "--root":
        argv, text = ["data", "--root", str(tmp_path / LONG), "--no-download"], "File name too long"
    else:
        monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / LONG))
        argv, text = ["train", "--quick", "--epochs", "1"], "File name too long"
    _one_line(capsys, argv, text)


def test_a_cache_in_proc_fails_at_once(tmp_path):
    """/proc refuses new files with ENOENT, which filelock takes for a race and retries for ever."""
    env = {**os.environ, "VAE_TUT_CACHE": "/proc", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "vae_tut", "train", "--quick", "--epochs", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "cannot write the lock file /proc/." in lines[0] and ".lock" in lines[0]


def test_reproduce_out_in_proc_fails_before_training(capsys):
    _one_line(capsys, ["reproduce", "--quick", "--only", "ae", "--out", "/proc/x.md"],
              "--out /proc/x.md cannot be written")
    from vae_tut.experiments import cache_dir
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_a_lock_held_elsewhere_is_waited_for_then_named(capsys, tmp_path, monkeypatch):
    import fcntl

    from vae_tut import store

    folder = tmp_path / "entry"
    lock_file = tmp_path / ".entry.lock"
    monkeypatch.setattr(store, "LOCK_NOTE_AFTER", 0.1)
    with open(lock_file, "w") as holder:  # another process's lock: flock on another open file
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(CacheError) as caught:
            store.cached(folder, lambda s: (1, {}), lambda f: 1, timeout=0.5)
    assert str(lock_file) in str(caught.value) and "\n" not in str(caught.value)
    assert capsys.readouterr().err.strip() == f"waiting for {lock_file} (held by another process)"


# ---------------------------------------------------------------- section 3: exported decoders

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One exported decoder (the ONNX export takes seconds), copied by each test that damages it."""
    torch.manual_seed(0)
    run = SimpleNamespace(config=RunConfig(z=2).resolved("cpu"), model=build_model("mlp", 2).eval())
    cache = tmp_path_factory.mktemp("exported")
    path, meta = web.decoder_entry(run, cache)
    return run, path.parent, meta


def _truncate(entry, name):
    blob = (entry / name).read_bytes()
    (entry / name).write_bytes(blob[:len(blob) // 2])


def _edit_checks(entry):
    meta = json.loads((entry / "meta.json").read_text())
    meta["checks"][1]["pixels"][100] = 0.5
    (entry / "meta.json").write_text(json.dumps(meta))


ENTRY_DAMAGE = {
    "truncated meta.json": (lambda e: _truncate(e, "meta.json"), "is unreadable"),
    "meta.json without keys": (lambda e: (e / "meta.json").write_text("{}"), "meta.json lacks"),
    "truncated decoder.onnx": (lambda e: _truncate(e, "decoder.onnx"), "does not match its checksum"),
    "edited check pixels": (_edit_checks, "does not match its checksum"),
    "decoder.onnx missing": (lambda e: (e / "decoder.onnx").unlink(), "is unreadable"),
}


def test_a_damaged_exported_decoder_is_one_line(exported, tmp_path):
    run, entry, meta = exported
    assert web.load_entry(entry)[0] == meta  # the intact entry passes its checksum
    for i, (damage, (spoil, text)) in enumerate(ENTRY_DAMAGE.items()):
        cache = tmp_path / f"cache{i}"  # a fresh copy for each damage
        copy = web.entries_root(cache) / entry.name
        shutil.copytree(entry, copy)
        spoil(copy)
        with pytest.raises(CacheError) as caught:
            web.decoder_entry(run, cache)
        message = str(caught.value)
        assert text in message and str(copy) in message and "\n" not in message, (damage, message)


# ---------------------------------------------------------------- section 4: on/off variables

def test_quick_flag_values(monkeypatch):
    from vae_tut.experiments import quick_mode

    for value, quick in [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False),
                         ("no", False), ("OFF", False), ("", False)]:
        monkeypatch.setenv("VAE_TUT_QUICK", value)
        assert quick_mode() is quick, value
        assert RunConfig().resolved("cpu").is_quick is quick, value


def test_an_unknown_flag_value_is_one_line(capsys, monkeypatch):
    for variable in ("VAE_TUT_QUICK", "VAE_TUT_NO_DOWNLOAD", "VAE_TUT_PROGRESS"):
        with monkeypatch.context() as env:
            env.setenv(variable, "maybe")
            line = _one_line(capsys, ["train", "--epochs", "1"], f"${variable}='maybe' is not an on/off value")
        assert line == (f"python -m vae_tut train: error: ${variable}='maybe' is not an on/off value; "
                        "use one of 1, true, yes, on or 0, false, no, off"), line


def test_an_empty_root_is_the_default_root(capsys, tmp_path, monkeypatch):
    """``data --root ''`` and ``VAE_TUT_DATA=''`` both mean the default root, never the current folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    default = tmp_path / "xdg" / "vae_tut" / "data"
    for argv, env in ((["data", "--root", "", "--dataset", "mnist", "--no-download"], None),
                      (["data", "--dataset", "mnist", "--no-download"], "")):
        if env is not None:
            monkeypatch.setenv("VAE_TUT_DATA", env)
        line = _one_line(capsys, argv, "not in the data root")
        assert f"data root {default}." in line, line
    assert not (tmp_path / "MNIST").exists()


# ---------------------------------------------------------------- section 5: every public function

def _fake_run(z=2):
    torch.manual_seed(0)
    return SimpleNamespace(config=RunConfig(z=z).resolved("cpu"), model=build_model("mlp", z).eval())


MODEL = build_model("mlp", 2).eval()
AE = build_model("mlp", 2, kind="ae").eval()
CVAE = build_model("mlp", 2, kind="cvae").eval()
IMAGES = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.arange(6) % 3
CODES = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
IMAGES_8BIT = torch.round(IMAGES * 255) / 255
VARS = torch.rand(6, 2, generator=torch.Generator().manual_seed(2)) + 0.1
KINDS = ("empty", "NaN", "float64", "wrong shape", "numpy")


def _spoil(good, kind):
    """``good`` made bad in one way."""
    if kind == "empty":
        return good[:0]
    if kind == "NaN":
        bad = good.clone().float()
        bad.view(-1)[0] = float("nan")
        return bad
    if kind == "float64":
        return good.double()
    if kind == "wrong shape":
        return good.unsqueeze(-1)
    if kind == "numpy":
        return good.numpy()
    if kind == "negative":
        bad = good.clone()
        bad[0] = -1
        return bad
    raise AssertionError(kind)


def _wrong(message: str, expected) -> bool:
    """Whether ``message`` is not the pinned one: ``expected`` is the whole one-line message (a
    str) or parts it must hold (a tuple: "labels must be a integer" keeps its article out of it)."""
    parts = expected if isinstance(expected, tuple) else None
    return "\n" in message or (message != expected if parts is None else not all(p in message for p in parts))


NUMPY = "got a numpy.ndarray (torch.as_tensor(x).float() converts it)"
IMAGES_MUST = "images must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], got "
ANY_IMAGES_MUST = "images must be a float tensor [N, ...] with values in [0, 1], got "
ANY_IMAGES_NUMPY = "images must be a float tensor [N, ...] of finite values, " + NUMPY
ACCEPTED = None  # the value passes the check

# the five bad kinds once on each checker of vae_tut.validation, which every public function's
# door uses: a tensor checker gets ``good`` spoilt each way (_spoil), a number or name checker
# the same kinds of mistake by hand; kind -> the exact message (ACCEPTED: a valid value)
TENSOR_VALIDATORS = {
    "images": (validation.images, IMAGES, {
        "empty": IMAGES_MUST + "no images",
        "NaN": IMAGES_MUST + "NaN values",
        "float64": IMAGES_MUST + "torch.float64 (images.float() converts them)",
        "wrong shape": IMAGES_MUST + "shape [6, 1, 28, 28, 1]",
        "numpy": IMAGES_MUST + NUMPY[4:]}),
    "codes": (lambda x: validation.codes(x, "codes", 2), CODES, {
        "empty": "codes must be a float32 tensor [N, 2] with at least 1 row, got 0",
        "NaN": "codes must be finite, got NaN or infinite values",
        "float64": "codes must be a float32 tensor [N, 2], got torch.float64 (.float() converts it)",
        "wrong shape": "codes must be a float32 tensor [N, 2], got shape [6, 2, 1]",
        "numpy": "codes must be a float32 tensor [N, 2], " + NUMPY}),
    "labels": (lambda x: validation.labels(x, 6), LABELS, {
        "empty": ("labels must be a", "integer tensor [N] with at least 1 row, got 0"),
        "NaN": ("labels must be a", "integer tensor [N], got torch.float32"),
        "float64": ("labels must be a", "integer tensor [N], got torch.float64"),
        "wrong shape": ("labels must be a", "integer tensor [N], got shape [6, 1]"),
        "numpy": ("labels must be a", "integer tensor [N], " + NUMPY),
        "negative": "labels must be >= 0 everywhere, got -1"}),
    "tensor": (lambda x: validation.tensor(x, "activity", (None,)), VARS[:, 0].contiguous(), {
        "empty": "activity must be a float32 tensor [N] with at least 1 row, got 0",
        "NaN": "activity must be finite, got NaN or infinite values",
        "float64": "activity must be a float32 tensor [N], got torch.float64 (.float() converts it)",
        "wrong shape": "activity must be a float32 tensor [N], got shape [6, 1]",
        "numpy": "activity must be a float32 tensor [N], " + NUMPY}),
}
WHOLE = "batch size must be a whole number >= 1, got "
SEED = "seed must be a whole number from 0 to 4294967295, got "
PAIR = "pair must be two indices into the images, got "
NAMES = "class_names must name every label (0 to 2), got "
VALUE_VALIDATORS = {  # kind -> (the bad value, its message)
    "whole": (lambda x: validation.whole(x, "batch size", 1), {
        "empty": ("", WHOLE + "''"), "NaN": (math.nan, WHOLE + "nan"),
        "float64": (np.float64(2.0), WHOLE + "np.float64(2.0)"), "wrong shape": ([2], WHOLE + "[2]"),
        "numpy": (np.int64(2), WHOLE + "np.int64(2)")}),
    "positive": (lambda x: validation.positive(x, "learning rate"), {
        "empty": ("", "learning rate must be a finite number > 0, got ''"),
        "NaN": (math.nan, "learning rate must be a finite number > 0, got nan"),
        "float64": (np.float64(0.5), ACCEPTED),  # a numpy float is a float
        "wrong shape": ([0.5], "learning rate must be a finite number > 0, got [0.5]"),
        "numpy": (np.array(0.5), "learning rate must be a finite number > 0, got array(0.5)")}),
    "finite": (lambda x: validation.finite(x, "log p"), {
        "empty": ("", "log p must be a finite number, got ''"),
        "NaN": (math.nan, "log p must be a finite number, got nan"),
        "float64": (np.float64(-0.5), ACCEPTED),
        "wrong shape": ([0.5], "log p must be a finite number, got [0.5]"),
        "numpy": (np.array(0.5), "log p must be a finite number, got array(0.5)")}),
    "one_of": (lambda x: validation.one_of(x, ("mlp", "cnn"), "architecture"), {
        "empty": ("", "unknown architecture ''; choose one of: mlp, cnn"),
        "NaN": (math.nan, "unknown architecture nan; choose one of: mlp, cnn"),
        "float64": (np.float64(1.0), "unknown architecture np.float64(1.0); choose one of: mlp, cnn"),
        "wrong shape": (["mlp"], "unknown architecture ['mlp']; choose one of: mlp, cnn"),
        "numpy": (np.str_("mlp"), ACCEPTED)}),  # a numpy string is a str
    "seed": (validation.seed, {
        "empty": ("", SEED + "''"), "NaN": (math.nan, SEED + "nan"),
        "float64": (np.float64(1.0), SEED + "np.float64(1.0)"), "wrong shape": ([1], SEED + "[1]"),
        "numpy": (np.int64(1), SEED + "np.int64(1)")}),
    "flag": (lambda x: validation.flag(x, "progress"), {
        "empty": ("", "progress must be True or False, got ''"),
        "NaN": (math.nan, "progress must be True or False, got nan"),
        "float64": (np.float64(1.0), "progress must be True or False, got np.float64(1.0)"),
        "wrong shape": ([True], "progress must be True or False, got [True]"),
        "numpy": (np.bool_(True), "progress must be True or False, got np.True_")}),
    "pair": (lambda x: validation.pair(x, 6), {
        "empty": ((), PAIR + "()"),
        "NaN": ((math.nan, 1), "pair index must be a whole number from 0 to 5, got nan"),
        "float64": ((np.float64(0.0), 1), "pair index must be a whole number from 0 to 5, got np.float64(0.0)"),
        "wrong shape": ((0, 1, 2), PAIR + "(0, 1, 2)"),
        "numpy": (np.array([0, 1]), PAIR + "array([0, 1])")}),
    "class_names": (lambda x: validation.class_names(x, 3), {
        "empty": ([], NAMES + "0 names"), "NaN": (math.nan, NAMES + "nan"),
        "float64": (np.float64(3.0), NAMES + "np.float64(3.0)"), "wrong shape": (["a", "b"], NAMES + "2 names"),
        "numpy": (np.array(["a", "b", "c"]), NAMES + "array(['a', 'b', 'c'], dtype='<U1')")}),
}
VALIDATORS = {**{name: (call, {kind: (_spoil(good, kind), message) for kind, message in kinds.items()})
                 for name, (call, good, kinds) in TENSOR_VALIDATORS.items()}, **VALUE_VALIDATORS}


def test_the_validators_cover_the_five_kinds():
    assert set(VALIDATORS) == {"images", "codes", "labels", "tensor", "whole", "positive", "finite", "one_of",
                               "seed", "flag", "pair", "class_names"}
    assert all(set(KINDS) <= set(kinds) for _, kinds in VALIDATORS.values())


def test_each_validator_names_each_bad_kind():
    """Each checker of vae_tut.validation given each of the five bad kinds: its exact one-line message."""
    wrong = []
    for name, (check, kinds) in VALIDATORS.items():
        for kind, (bad, expected) in kinds.items():
            try:
                result = check(bad)
            except ConfigError as caught:
                if expected is ACCEPTED or _wrong(str(caught), expected):
                    wrong.append(f"{name} ({kind}): {caught}")
            else:
                if expected is not ACCEPTED or result != bad:
                    wrong.append(f"{name} ({kind}): no error, gave {result!r}")
    assert not wrong, "\n".join(wrong)


# public function (and which argument) -> (call with that argument replaced, its good value, the bad
# kind that its own door check catches, the message). Each kind of mistake is checked once on each
# validator above; here each function once, with the kind its door names in its own words where it
# has one (an argument name, a row count, a shape of its own) and the kinds spread over the rest
RUN = SimpleNamespace(model=MODEL, config=SimpleNamespace(c=0.05))
NOT_INTEGER = ("labels must be a", "integer tensor [N], got ")
WALK = {
    "conventions.image_terms": (lambda x: conventions.image_terms(MODEL, x, 0.05), IMAGES, "NaN",
                                IMAGES_MUST + "NaN values"),
    "conventions.kl_per_batch": (lambda x: conventions.kl_per_batch(MODEL, x, batch_size=2), IMAGES, "empty",
                                 IMAGES_MUST + "no images"),
    "conventions.conventions": (lambda x: conventions.conventions(MODEL, x, 0.05), IMAGES, "float64",
                                IMAGES_MUST + "torch.float64 (images.float() converts them)"),
    "conventions.convention_rows": (lambda x: conventions.convention_rows(RUN, x), IMAGES, "wrong shape",
                                    IMAGES_MUST + "shape [6, 1, 28, 28, 1]"),
    "analysis.posterior_samples(means)": (lambda x: analysis.posterior_samples(x, VARS), CODES, "numpy",
                                          "means must be a float32 tensor [N, *], " + NUMPY),
    "analysis.posterior_samples(variances)": (lambda x: analysis.posterior_samples(CODES, x), VARS, "NaN",
                                              "variances must be finite, got NaN or infinite values"),
    "analysis.kl_per_dim": (lambda x: analysis.kl_per_dim(MODEL, x), IMAGES, "numpy", IMAGES_MUST + NUMPY[4:]),
    "analysis.unit_activity": (analysis.unit_activity, CODES, "empty",
                               "means must be a float32 tensor [N, *] with at least 2 rows, got 0"),
    "analysis.active_mask": (analysis.active_mask, VARS[:, 0].contiguous(), "wrong shape",
                             "activity must be a float32 tensor [N], got shape [6, 1]"),
    "analysis.aggregate_std": (lambda x: analysis.aggregate_std(x, VARS), CODES, "float64",
                               "means must be a float32 tensor [N, *], got torch.float64 (.float() converts it)"),
    "analysis.marginal_kl": (lambda x: analysis.marginal_kl(CODES, x, n_samples=10), VARS, "empty",
                             "variances must be a float32 tensor [N, *] with at least 1 row, got 0"),
    "analysis.aggregate_gaussian_samples": (lambda x: analysis.aggregate_gaussian_samples(x, VARS, 4), CODES,
                                            "wrong shape",
                                            "means must be a float32 tensor [N, *], got shape [6, 2, 1]"),
    "analysis.nearest_code(samples)": (lambda x: analysis.nearest_code(x, CODES), CODES, "NaN",
                                       "samples must be finite, got NaN or infinite values"),
    "analysis.nearest_code(codes)": (lambda x: analysis.nearest_code(CODES, x), CODES, "wrong shape",
                                     "codes must be a float32 tensor [N, 2], got shape [6, 2, 1]"),
    "analysis.distortion": (lambda x: analysis.distortion(MODEL, x), IMAGES, "float64",
                            IMAGES_MUST + "torch.float64 (images.float() converts them)"),
    "analysis.rate": (lambda x: analysis.rate(MODEL, x), IMAGES, "empty", IMAGES_MUST + "no images"),
    "analysis.dequantized_distortion_rate": (lambda x: analysis.dequantized_distortion_rate(MODEL, x, samples=2),
                                             IMAGES_8BIT, "empty", ANY_IMAGES_MUST + "no images"),
    "analysis.loss_in_batchnorm_mode": (lambda x: analysis.loss_in_batchnorm_mode(MODEL, x, 0.05, "eval"), IMAGES,
                                        "NaN", IMAGES_MUST + "NaN values"),
    "latent.encode": (lambda x: latent.encode(MODEL, x), IMAGES, "wrong shape",
                      IMAGES_MUST + "shape [6, 1, 28, 28, 1]"),
    "latent.decode": (lambda x: latent.decode(MODEL, x), CODES, "float64",
                      "codes must be a float32 tensor [N, 2], got torch.float64 (.float() converts it)"),
    # float64 is fine here: chapter 1 joins two float64 images
    "latent.interpolate": (lambda x: latent.interpolate(x, CODES[1]), CODES[0].clone(), "wrong shape",
                           "end point a must be a floating-point tensor [N], got shape [2, 1]"),
    "latent.extent": (latent.extent, CODES, "empty",
                      "codes must be a float32 tensor [N, *] with at least 1 row, got 0"),
    "plots.image_grid": (lambda x: plots.image_grid(x, nrow=3), IMAGES, "numpy", IMAGES_MUST + NUMPY[4:]),
    "plots.grid_canvas": (lambda x: plots.grid_canvas(x, nrow=3), IMAGES, "NaN", IMAGES_MUST + "NaN values"),
    "plots.latent_scatter(codes)": (lambda x: plots.latent_scatter(x, LABELS), CODES, "NaN",
                                    "codes must be finite, got NaN or infinite values"),
    "plots.latent_scatter(labels)": (lambda x: plots.latent_scatter(CODES, x), LABELS, "float64",
                                     NOT_INTEGER + ("torch.float64",)),
    "figures.latent_map(images)": (lambda x: figures.latent_map(MODEL, x, LABELS), IMAGES, "empty",
                                   IMAGES_MUST + "no images"),
    "figures.latent_map(labels)": (lambda x: figures.latent_map(MODEL, IMAGES, x), LABELS, "negative",
                                   "labels must be >= 0 everywhere, got -1"),
    "figures.latent_map(path)": (lambda x: figures.latent_map(MODEL, IMAGES, LABELS, path=x), CODES, "float64",
                                 "path must be a float32 tensor [N, 2], got torch.float64 (.float() converts it)"),
    "figures.interpolation_codes": (lambda x: figures.interpolation_codes(MODEL, x, IMAGES[1]), IMAGES[0].clone(),
                                    "wrong shape", "start must be one image [1, 28, 28] (e.g. images[i]), got "
                                    "[1, 28, 28, 1]"),
    "figures.latent_figure(images)": (lambda x: figures.latent_figure(MODEL, x, LABELS, (0, 1), "t"), IMAGES, "NaN",
                                      IMAGES_MUST + "NaN values"),
    "figures.latent_figure(labels)": (lambda x: figures.latent_figure(MODEL, IMAGES, x, (0, 1), "t"), LABELS,
                                      "wrong shape", NOT_INTEGER + ("shape [6, 1]",)),
    "web.explorer(images)": (lambda x: web.explorer(_fake_run(), x, LABELS), IMAGES, "float64",
                             IMAGES_MUST + "torch.float64 (images.float() converts them)"),
    "web.explorer(labels)": (lambda x: web.explorer(_fake_run(), IMAGES, x), LABELS, "numpy", NOT_INTEGER + (NUMPY,)),
    "web.explorer(encoded)": (lambda x: web.explorer(_fake_run(), IMAGES, LABELS, encoded=(x, VARS)), CODES, "empty",
                              "encoded means must be a float32 tensor [N, 2] with at least 6 rows, got 0"),
    "web.sweep_frame": (lambda x: web.sweep_frame(_fake_run(), x, "c", n_recon=2), IMAGES, "wrong shape",
                        IMAGES_MUST + "shape [6, 1, 28, 28, 1]"),
    "web.grid_png": (lambda x: web.grid_png(x, nrow=3), IMAGES, "empty", IMAGES_MUST + "no images"),
    "classifier.class_probabilities": (classifier.class_probabilities, IMAGES, "NaN",
                                       "images to classify must be a float32 tensor [N, 1, 28, 28] with values in "
                                       "[0, 1], got NaN values"),
    "classifier.sample_quality": (classifier.sample_quality, IMAGES, "float64",
                                  "images to classify must be a float32 tensor [N, 1, 28, 28] with values in [0, 1], "
                                  "got torch.float64 (images.float() converts them)"),
    "classifier.verdict": (classifier.verdict, torch.full((4, 10), 0.1), "wrong shape",
                           "class probabilities must be a float32 tensor [N, 10], got shape [4, 10, 1]"),
    "widgets.LatentExplorer(codes)": (lambda x: widgets.LatentExplorer(MODEL, x, LABELS), CODES, "numpy",
                                      "codes must be a float32 tensor [N, 2], " + NUMPY),
    "widgets.LatentExplorer(labels)": (lambda x: widgets.LatentExplorer(MODEL, CODES, x), LABELS, "NaN",
                                       NOT_INTEGER + ("torch.float32",)),
    "widgets.latent_explorer": (lambda x: widgets.latent_explorer(MODEL, x, LABELS), CODES, "NaN",
                                "codes must be finite, got NaN or infinite values"),
    # the compute modules take any [N, ...] and also score float64 points (chapter 10's toy model):
    # their door names empty, NaN and numpy input (a wrong shape reaches the model's own check)
    "evaluate.elbo": (lambda x: evaluate.elbo(MODEL, x, 0.05), IMAGES, "numpy", ANY_IMAGES_NUMPY),
    "evaluate.elbo_terms": (lambda x: evaluate.elbo_terms(MODEL, x, 0.05), IMAGES, "NaN",
                            ANY_IMAGES_MUST + "NaN values"),
    "evaluate.log_importance_weights": (lambda x: evaluate.log_importance_weights(MODEL, x, 0.05, 3), IMAGES, "empty",
                                        ANY_IMAGES_MUST + "no images"),
    "evaluate.log_importance_weights_at": (lambda x: evaluate.log_importance_weights_at(MODEL, x, [x], 0.05, 3),
                                           IMAGES, "NaN", ANY_IMAGES_MUST + "NaN values"),
    "evaluate.iwae_from_weights": (evaluate.iwae_from_weights, CODES, "NaN",
                                   "log weights must be numbers or -inf (a zero weight), got NaN or +inf"),
    "evaluate.is_8bit": (evaluate.is_8bit, IMAGES, "numpy", ANY_IMAGES_NUMPY),
    "evaluate.dequantize": (evaluate.dequantize, IMAGES_8BIT, "empty", ANY_IMAGES_MUST + "no images"),
    "evaluate.bits_per_dim_8bit": (evaluate.bits_per_dim_8bit, torch.zeros(6), "NaN",
                                   "log p must be finite, got NaN or infinite values"),
    "evaluate.independent_pixels_bits_per_dim(train)": (
        lambda x: evaluate.independent_pixels_bits_per_dim(x, IMAGES_8BIT), IMAGES_8BIT, "wrong shape",
        "train_images and test_images must have the same image shape, got [1, 28, 28, 1] and [1, 28, 28]"),
    "evaluate.independent_pixels_bits_per_dim(test)": (
        lambda x: evaluate.independent_pixels_bits_per_dim(IMAGES_8BIT, x), IMAGES_8BIT, "NaN",
        ANY_IMAGES_MUST + "NaN values"),
    "evaluate.check_images": (evaluate.check_images, IMAGES, "empty", ANY_IMAGES_MUST + "no images"),
    "likelihood.evaluate_run": (lambda x: likelihood.evaluate_run(_fake_run(), x, (1, 2), elbo_samples=1, cache=False),
                                IMAGES, "numpy", ANY_IMAGES_NUMPY),
    "losses.vae_loss": (lambda x: losses.vae_loss(x, torch.zeros(6, 1, 28, 28), CODES, VARS, 0.05), IMAGES,
                        "wrong shape", "images and logits differ in shape: [6, 1, 28, 28, 1] vs [6, 1, 28, 28]"),
    # the loss's building blocks take any float type: chapter 4 checks them in float64
    "losses.reconstruction_loss(images)": (lambda x: losses.reconstruction_loss(x, IMAGES, 0.05), IMAGES, "NaN",
                                           "images must be finite, got NaN or infinite values"),
    "losses.reconstruction_loss(reconstructions)": (
        lambda x: losses.reconstruction_loss(IMAGES, x, 0.05), IMAGES, "empty",
        "reconstructions must be a floating-point tensor [N, *, *, *] with at least 1 row, got 0"),
    "losses.learned_gaussian_loss": (lambda x: losses.learned_gaussian_loss(x, IMAGES, torch.zeros(())), IMAGES,
                                     "wrong shape",
                                     "images and reconstructions differ in shape: [6, 1, 28, 28, 1] vs [6, 1, 28, 28]"),
    "losses.bernoulli_reconstruction_loss": (lambda x: losses.bernoulli_reconstruction_loss(IMAGES.round(), x),
                                             torch.zeros(6, 1, 28, 28), "NaN",
                                             "logits must be finite, got NaN or infinite values"),
    "losses.binarize": (losses.binarize, IMAGES, "numpy", ANY_IMAGES_MUST + NUMPY[4:]),
    "losses.check_pixels": (losses.check_pixels, IMAGES, "empty", ANY_IMAGES_MUST + "no images"),
    "losses.kl_divergence(mean)": (lambda x: losses.kl_divergence(x, VARS), CODES, "empty",
                                   "mean must be a floating-point tensor [N, *] with at least 1 row, got 0"),
    "losses.kl_divergence(variance)": (lambda x: losses.kl_divergence(CODES, x), VARS, "wrong shape",
                                       "mean and variance differ in shape: [6, 2] vs [6, 2, 1]"),
    "losses.kl_per_dimension": (lambda x: losses.kl_per_dimension(CODES, x), VARS, "NaN",
                                "variance must be finite, got NaN or infinite values"),
    "losses.kl_term(mean)": (lambda x: losses.kl_term(x, VARS, "var-as-std"), CODES, "NaN",
                             "mean must be finite, got NaN or infinite values"),
    "losses.kl_term(variance)": (lambda x: losses.kl_term(CODES, x, "var-as-logvar"), VARS, "empty",
                                 "variance must be a floating-point tensor [N, *] with at least 1 row, got 0"),
    "train.average_loss": (lambda x: average_loss(MODEL, x, 0.05), IMAGES, "numpy", IMAGES_MUST + NUMPY[4:]),
    "train.fit": (lambda x: fit(build_model("mlp", 2), x, IMAGES, c=0.05, lr=1e-3, batch_size=2, epochs=1,
                                progress=False), IMAGES, "float64",
                  "training " + IMAGES_MUST + "torch.float64 (images.float() converts them)"),
    "train.check_labels": (lambda x: train.check_labels(CVAE, x, 6), LABELS, "numpy",
                           "a conditional VAE needs labels: an integer tensor [6] of class indices"),
    "models.VAE.encode": (MODEL.encode, IMAGES, "NaN", "the encoder's images must be a float32 tensor "
                          "[N, 1, 28, 28] of finite values, got NaN values"),
    "models.VAE.decode": (MODEL.decode, CODES, "wrong shape",
                          "the decoder's codes must be a float32 tensor [N, 2], got shape [6, 2, 1]"),
    "models.Autoencoder.encode": (AE.encode, IMAGES, "float64", "the encoder's images must be a float32 tensor "
                                  "[N, 1, 28, 28] of finite values, got torch.float64 (images.float() converts them)"),
    "models.Autoencoder.decode": (AE.decode, CODES, "empty",
                                  "the decoder's codes must be a float32 tensor [N, 2] with at least 1 row, got 0"),
    "models.ConditionalVAE.encode": (lambda x: CVAE.encode(x, LABELS), IMAGES, "numpy", "the encoder's images must "
                                     "be a float32 tensor [N, 1, 28, 28] of finite values, " + NUMPY),
    "models.ConditionalVAE.decode": (lambda x: CVAE.decode(x, LABELS), CODES, "NaN",
                                     "the decoder's codes must be finite, got NaN or infinite values"),
}


# public functions that take a tensor but are not walked, and why
NOT_WALKED = {
    "models.VAE.reparameterize": "a step of the training pass; fit reports a NaN it makes as a divergence",
    "models.VAE.forward": "the training step: fit checks its images once, encode/decode check a reader's",
    "models.Autoencoder.forward": "the training step, as VAE.forward",
    "models.ConditionalVAE.forward": "the training step, as VAE.forward",
    "train.forward": "the training step's call of the model, as VAE.forward",
    "losses.step_terms": "the training step's loss of the model's own outputs; vae_loss checks a reader's",
    "evaluate.LatentModel.encode": "a Protocol's signature, not code",
}


def _takes_a_tensor(function) -> bool:
    """Whether a parameter other than ``self`` is annotated as a tensor."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any("Tensor" in str(p.annotation) and p.name != "self" for p in parameters)


def _public_tensor_functions():
    """``module.name`` (and ``module.Class.method``) of every public function of the package
    that takes a tensor; the networks' layer stacks (``FCEncoder``, ...) are torch modules, not API."""
    import importlib
    import inspect
    import pkgutil

    for info in pkgutil.iter_modules(vae_tut.__path__):
        module = importlib.import_module(f"vae_tut.{info.name}")
        if info.name == "validation":  # the checkers themselves
            continue
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj):
                if issubclass(obj, torch.nn.Module) and not hasattr(obj, "encode"):
                    continue
                members = [(f"{attr}.{m}", f) for m, f in vars(obj).items() if not m.startswith("_") and callable(f)]
                members += [(f"{attr}.{m}", getattr(obj, m)) for m in ("encode", "decode", "forward")
                            if m not in vars(obj) and callable(getattr(obj, m, None))]
                members.append((attr, obj.__init__))
            elif callable(obj):
                members = [(attr, obj)]
            else:
                continue
            for name, function in members:
                if _takes_a_tensor(function):
                    yield f"{info.name}.{name}"


def test_the_walk_covers_every_public_function():
    """Every public function of every module that takes a tensor is walked, or listed with its reason."""
    walked = {name.split("(")[0] for name in WALK}
    found = set(_public_tensor_functions())
    assert {"losses.kl_term", "models.VAE.decode", "latent.encode", "web.explorer"} <= found  # the finder works
    missing = found - walked - set(NOT_WALKED)
    assert not missing, f"neither walked nor listed: {sorted(missing)}"
    assert set(NOT_WALKED) <= found and not walked & set(NOT_WALKED)


@pytest.fixture
def _no_training_or_export(monkeypatch):
    """An untrained classifier instead of the cached one, and the explorers' static picture only:
    the walk checks input, not what training or the ONNX export would make of it."""
    untrained = classifier.Classifier(classifier.build_classifier().eval(), "mnist", 0.0, True)
    monkeypatch.setattr(classifier, "load_classifier", lambda dataset="mnist": untrained)

    def no_onnx(*args, **kwargs):
        raise ImportError("the walk skips the export")

    monkeypatch.setattr(web, "decoder_entry", no_onnx)


def test_public_functions_reject_bad_tensors(_no_training_or_export):
    """Each walked function: the good input works; its bad kind gives the pinned one line. Every
    function is tried; the failure lists each one whose message is not the pinned one."""
    wrong = []
    for name, (call, good, kind, expected) in WALK.items():
        call(good)
        try:
            call(_spoil(good, kind))
        except ConfigError as caught:
            if _wrong(str(caught), expected):
                wrong.append(f"{name} ({kind}): {caught}")
        else:
            wrong.append(f"{name} ({kind}): no error")
        plt.close("all")
    assert not wrong, "\n".join(wrong)


BATCH = "batch size must be a whole number >= 1, got 0"
MISMATCHES = {  # the call -> its one-line message, or a distinctive part of it
    "encode(batch_size=0)": (lambda: latent.encode(MODEL, IMAGES, batch_size=0), BATCH),
    "decode(batch_size=0)": (lambda: latent.decode(MODEL, CODES, batch_size=0), BATCH),
    "nearest_code(batch_size=0)": (lambda: analysis.nearest_code(CODES, CODES, batch_size=0), BATCH),
    "marginal_kl(batch_size=0)": (lambda: analysis.marginal_kl(CODES, VARS, batch_size=0), BATCH),
    "decode codes of the wrong width": (lambda: latent.decode(MODEL, torch.zeros(3, 5)),
                                        "codes must be a float32 tensor [N, 2], got shape [3, 5]"),
    "nearest_code of two widths": (lambda: analysis.nearest_code(CODES, torch.zeros(3, 5)),
                                   "codes must be a float32 tensor [N, 2], got shape [3, 5]"),
    "explorer codes of the wrong width": (
        lambda: web.explorer(_fake_run(), IMAGES, LABELS, encoded=(torch.zeros(6, 3), torch.ones(6, 3))),
        "encoded means must be a float32 tensor [N, 2], got shape [6, 3]"),
    "LatentExplorer codes of the wrong width": (lambda: widgets.LatentExplorer(MODEL, torch.zeros(6, 3), LABELS),
                                                "codes must be a float32 tensor [N, 2], got shape [6, 3]"),
    "means and variances of two shapes": (lambda: analysis.aggregate_std(CODES, VARS[:3]),
                                          "means and variances must have the same shape, got [6, 2] and [3, 2]"),
    "unit_activity of one image": (lambda: analysis.unit_activity(CODES[:1]),
                                   "means must be a float32 tensor [N, *] with at least 2 rows, got 1"),
    "aggregate_gaussian_samples of one image": (
        lambda: analysis.aggregate_gaussian_samples(CODES[:1], VARS[:1], 4),
        "means must be a float32 tensor [N, *] with at least 2 rows, got 1"),
    "explorer with one image": (lambda: web.explorer(_fake_run(), IMAGES[:1], LABELS[:1]),
                                "the explorer needs at least two images (one for each end of its path), got 1"),
    "latent_scatter with fewer labels than codes": (lambda: plots.latent_scatter(CODES, LABELS[:3]),
                                                    "labels must hold one label per item (6), got 3"),
    "latent_scatter class names missing": (lambda: plots.latent_scatter(CODES, LABELS, class_names=["a"]),
                                           "class_names must name every label (0 to 2), got 1 name"),
    "latent_figure pair out of range": (lambda: figures.latent_figure(MODEL, IMAGES, LABELS, (0, 6), "t"),
                                        "pair index must be a whole number from 0 to 5, got 6"),
    "interpolation_codes of a batch": (lambda: figures.interpolation_codes(MODEL, IMAGES, IMAGES),
                                       "start must be one image [1, 28, 28] (e.g. images[i]), got [6, 1, 28, 28]"),
    "manifold of a 3-D model": (lambda: figures.manifold(build_model("mlp", 3)),
                                "manifold needs a model with a 2-D latent space, got latent_dim=3"),
    "interpolate with one step": (lambda: latent.interpolate(CODES[0], CODES[1], steps=1),
                                  "steps must be a whole number >= 2, got 1"),
    "prior_samples(n=0)": (lambda: analysis.prior_samples(0, 2),
                           "number of samples must be a whole number >= 1, got 0"),
    "normal_quantile_codes(tail=0)": (lambda: latent.normal_quantile_codes(5, tail=0.0),
                                      "tail must be a finite number > 0 and <= 0.5, got 0.0"),
    "verdict of negative numbers": (lambda: classifier.verdict(torch.full((2, 10), -0.5)),
                                    "class probabilities must be >= 0 everywhere, got -0.5"),
    "history_curves of no epochs": (lambda: plots.history_curves([]), "history must be a non-empty list of epochs"),
    "sweep without frames": (lambda: web.sweep([], [], "z"),
                             "sweep needs one list of frames per slider value, and at least one value"),
    "bits of a NaN log p": (lambda: evaluate.bits_per_dim_8bit(float("nan")), "log p must be a finite number, got nan"),
    "independent pixels of 0..255 images": (
        lambda: evaluate.independent_pixels_bits_per_dim(IMAGES_8BIT, IMAGES_8BIT * 255),
        ANY_IMAGES_MUST + "values from 0 to 255 (divide 0..255 pixels by 255.0)"),
    "independent pixels of images of two sizes": (
        lambda: evaluate.independent_pixels_bits_per_dim(IMAGES_8BIT, IMAGES_8BIT[:, :, :14]),
        "train_images and test_images must have the same image shape, got [1, 28, 28] and [1, 14, 28]"),
    "independent pixels without smoothing": (
        lambda: evaluate.independent_pixels_bits_per_dim(IMAGES_8BIT, IMAGES_8BIT, smoothing=0),
        "smoothing must be a finite number > 0, got 0"),
    "unknown classifier data set": (lambda: classifier.class_probabilities(IMAGES, "cifar"),
                                    "unknown dataset 'cifar'; choose one of: mnist, fashion-mnist"),
}


def test_mismatched_arguments_give_a_clear_error(_no_training_or_export):
    wrong = _wrong_messages(MISMATCHES, ConfigError)
    assert not wrong, "\n".join(wrong)

def test_explorer_with_one_class_and_negative_labels(_no_training_or_export):
    run = _fake_run()
    block = web.explorer(run, IMAGES, torch.zeros(6, dtype=torch.int64), pair=None)  # one class: works
    assert [g["index"] for g in block.data["gallery"]] == [0, 1] and block.data["pair"] == [0, 1]
    with pytest.raises(ConfigError, match="labels must be >= 0"):
        web.explorer(run, IMAGES, LABELS - 1)


def test_the_progress_flag_reads_every_spelling(monkeypatch):
    """``VAE_TUT_PROGRESS=false`` turns the bars off like ``0`` (it used to leave them on)."""
    from vae_tut.train import progress_enabled

    for value, on in [("0", False), ("false", False), ("OFF", False), (" no ", False), ("1", True), ("yes", True),
                      ("", True)]:
        monkeypatch.setenv("VAE_TUT_PROGRESS", value)
        assert progress_enabled() is on, value
