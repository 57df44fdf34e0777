"""Every bad input a new user tried (issue "One store, one set of helpers"), replayed.

Each gives a clear one-line error (a :class:`~vae_tut.errors.VaeTutError` from the
API, exit status 2 from the command line) or a correct result; none a traceback or
a silent wrong number. Inputs that need a whole training run to set up are tested
where that run already is: test_store (two trainings into one cache),
test_experiments (edited or truncated cache entries), test_data (a corrupt .gz, a
partial set, a file rewritten with its old mtime) and test_cli (--out).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vae_tut import data
from vae_tut.cli import main
from vae_tut.errors import CacheError, ConfigError, DataError, VaeTutError
from vae_tut.evaluate import elbo
from vae_tut.latent import encode
from vae_tut.losses import kl_divergence, reconstruction_loss
from vae_tut.models import build_model
from vae_tut.train import average_loss, fit

GOOD = torch.rand(8, 1, 28, 28)


def _fit(**kw):
    args = dict(c=0.05, lr=0.001, batch_size=4, epochs=1, device="cpu", progress=False)
    args.update(kw)
    train = args.pop("train", GOOD)
    test = args.pop("test", GOOD)
    return fit(build_model("mlp", 2), train, test, **args)


API = {
    "numpy images": (lambda: _fit(train=GOOD.numpy()), "got a numpy.ndarray (torch.as_tensor"),
    "uint8 images": (lambda: _fit(train=(GOOD * 255).to(torch.uint8)), "got torch.uint8 (divide 0..255"),
    "0..255 float images": (lambda: _fit(train=GOOD * 255), "divide 0..255 pixels by 255.0"),
    "NaN pixels": (lambda: _fit(test=GOOD.clone().fill_(float("nan"))), "got values from nan"),
    "flat images": (lambda: _fit(train=GOOD.flatten(1)), "got shape [8, 784]"),
    "32-pixel images into the CNN": (lambda: build_model("cnn", 2)(torch.rand(2, 1, 32, 32)),
                                     "take images [N, 1, 28, 28], got shape [2, 1, 32, 32]"),
    "25-pixel images to encode": (lambda: encode(build_model("cnn", 2), torch.rand(2, 1, 25, 25)),
                                  "got shape [2, 1, 25, 25]"),
    "empty training set": (lambda: _fit(train=GOOD[:0]), "training images must be"),
    "empty test set": (lambda: _fit(test=GOOD[:0]), "got no images"),
    "average_loss(batch_size=0)": (lambda: average_loss(build_model("mlp", 2), GOOD, 0.05, batch_size=0),
                                   "batch size must be a whole number from 1"),
    "fit(resume={})": (lambda: _fit(resume={}), "resume must be a checkpoint"),
    "fit(lr=True)": (lambda: _fit(lr=True), "learning rate must be a finite number > 0"),
    "fit(batch_size=True)": (lambda: _fit(batch_size=True), "batch size must be a whole number from 1"),
    "fit(seed=-1)": (lambda: _fit(seed=-1), "seed must be a whole number from 0"),
    "reconstruction_loss on mismatched shapes": (
        lambda: reconstruction_loss(GOOD, GOOD[:, :, :14], 0.05), "differ in shape"),
    "KL with a zero variance": (lambda: kl_divergence(torch.zeros(3, 2), torch.zeros(3, 2)),
                                "every variance must be > 0"),
    "KL with a negative variance": (lambda: kl_divergence(torch.zeros(3, 2), -torch.ones(3, 2)),
                                    "every variance must be > 0"),
    "z = 10^12": (lambda: build_model("mlp", 10**12), "latent size z must be a whole number from 1 to 4096"),
    "ELBO of a numpy array": (lambda: elbo(build_model("mlp", 2), np.zeros((2, 1, 28, 28)), 0.05),
                              "images must be"),
}


@pytest.mark.parametrize("name", API)
def test_api_input_gives_a_clear_error(name):
    call, text = API[name]
    with pytest.raises(VaeTutError) as caught:
        call()
    message = str(caught.value)
    assert text in message and "\n" not in message, message


def _one_line(capsys, argv, text):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and text in err[0] and "Traceback" not in err[0], err


def test_cache_root_is_a_file(capsys, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "f"))
    _one_line(capsys, ["train", "--quick", "--epochs", "1"], "is a file, not a folder")


def test_data_root_is_a_file(capsys, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path / "f"))
    _one_line(capsys, ["data", "--dataset", "fashion-mnist"], "is a file, not a folder")


def test_read_only_cache_without_the_entry(capsys, real_data, monkeypatch):
    import filelock

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filelock.FileLock, "acquire", read_only)
    _one_line(capsys, ["train", "--quick", "--epochs", "1"], "cannot write to the cache folder")


def test_read_only_data_root_with_a_corrupt_file(capsys, real_data, tmp_path, monkeypatch):
    raw = data.DATASETS["mnist"].raw_dir(tmp_path)
    shutil.copytree(data.DATASETS["mnist"].raw_dir(real_data), raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 10008)

    def read_only(self, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(raw), "replace", read_only)
    _one_line(capsys, ["data", "--root", str(tmp_path), "--dataset", "mnist", "--no-download"],
              "is corrupt and cannot be moved aside")


def test_no_download_with_three_of_four_files(capsys, real_data, tmp_path, monkeypatch):
    raw = data.DATASETS["mnist"].raw_dir(tmp_path)
    shutil.copytree(data.DATASETS["mnist"].raw_dir(real_data), raw)
    (raw / "train-labels-idx1-ubyte").unlink()
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    _one_line(capsys, ["data", "--root", str(tmp_path), "--dataset", "mnist", "--no-download"],
              "lacks train-labels-idx1-ubyte")


def test_load_dataset_prepares_missing_data_on_first_use(real_data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "local_sources", lambda name: [data.DATASETS[name].raw_dir(real_data)])
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    images, labels = data.load_dataset("mnist", "test", root=tmp_path)
    assert images.shape == (10000, 1, 28, 28) and len(labels) == 10000
    data.check_dataset("mnist", tmp_path)


def test_load_dataset_without_sources_or_download_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    with pytest.raises(DataError, match="Get it in one of three ways"):
        data.load_dataset("fashion-mnist", "train", root=tmp_path)


def test_unknown_cache_error_is_a_vae_tut_error():
    assert issubclass(CacheError, VaeTutError) and issubclass(ConfigError, VaeTutError)
