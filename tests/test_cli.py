import json
import subprocess
import sys
from pathlib import Path

import pytest

from vae_tut.cli import build_parser, main


def _one_line_error(capsys, argv, *contains):
    code = None
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in contains:
        assert text in lines[0], lines[0]
    return lines[0]


def test_parser_defaults():
    args = build_parser().parse_args(["train"])
    assert (args.arch, args.dataset, args.z, args.c, args.epochs, args.batch_size, args.seed) == \
        ("mlp", "mnist", 2, 0.05, 15, 256, 0)
    assert args.lr is None and not args.json
    args = build_parser().parse_args(["train", "--arch", "cnn", "--z", "5", "--c", "1e-3",
                                      "--lr", "0.01", "--batch-size", "64", "--json"])
    assert (args.arch, args.z, args.c, args.lr, args.batch_size, args.json) == \
        ("cnn", 5, 1e-3, 0.01, 64, True)
    assert build_parser().parse_args(["reproduce", "--only", "latent"]).only == "latent"
    assert build_parser().parse_args(["train"]).precision is None
    assert build_parser().parse_args(["train", "--precision", "fp32"]).precision == "fp32"


TRAIN = "python -m vae_tut train: error: "
BAD_ARGUMENTS = [  # argv -> its one line on stderr (the whole line, or its start where a list of choices follows)
    (["train", "--dataset", "cifar"], TRAIN + "argument --dataset: invalid choice: 'cifar' (choose from 'mnist', "
                                              "'fashion-mnist')"),
    (["train", "--arch", "rnn"], TRAIN + "argument --arch: invalid choice: 'rnn' (choose from 'mlp', 'cnn')"),
    (["train", "--z", "0"], TRAIN + "latent size z must be a whole number from 1 to 4096, got 0"),
    (["train", "--z", "1000000000000"],
     TRAIN + "latent size z must be a whole number from 1 to 4096, got 1000000000000"),
    (["train", "--z", "two"], TRAIN + "argument --z: invalid int value: 'two'"),
    (["train", "--c", "0"], TRAIN + "decoder variance c must be a finite number > 0, got 0.0"),
    (["train", "--c", "-0.5"], TRAIN + "decoder variance c must be a finite number > 0, got -0.5"),
    (["train", "--lr", "0"], TRAIN + "learning rate must be a finite number > 0, got 0.0"),
    (["train", "--lr", "nan"], TRAIN + "learning rate must be a finite number > 0, got nan"),
    (["train", "--epochs", "0"], TRAIN + "epochs must be a whole number from 1 to 100000, got 0"),
    (["train", "--batch-size", "-3"], TRAIN + "batch size must be a whole number from 1 to 1048576, got -3"),
    (["train", "--seed", "-1"], TRAIN + "seed must be a whole number from 0 to 4294967295, got -1"),
    (["train", "--frobnicate"], "python -m vae_tut: error: unrecognized arguments: --frobnicate"),
    (["train", "--precision", "fp16"], TRAIN + "argument --precision: invalid choice: 'fp16' (choose from 'fp32', "
                                               "'bf16', 'auto')"),
    (["reproduce", "--only", "everything"], "python -m vae_tut reproduce: error: argument --only: invalid choice: "
                                            "'everything' (choose from 'base', "),
    (["data", "--dataset", "svhn"], "python -m vae_tut data: error: argument --dataset: invalid choice: 'svhn' "
                                    "(choose from 'mnist', 'fashion-mnist', 'all')"),
    (["fly"], "python -m vae_tut: error: argument command: invalid choice: 'fly' (choose from 'data', "),
]


def test_bad_arguments_one_line_exit_2(capsys):
    for argv, text in BAD_ARGUMENTS:
        line = _one_line_error(capsys, argv, text)
        assert line.startswith(text), (argv, line)


def test_missing_data_one_line_exit_2(capsys, tmp_path, monkeypatch):
    from vae_tut import data
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path))
    line = _one_line_error(capsys, ["train", "--quick"], "not in the data root")
    assert "python -m vae_tut data" in line


def test_data_without_any_source_one_line_exit_2(capsys, tmp_path, monkeypatch):
    from vae_tut import data
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    _one_line_error(capsys, ["data", "--root", str(tmp_path), "--dataset", "mnist",
                             "--no-download"], "not in the data root")


def test_corrupt_cache_one_line_exit_2(capsys, monkeypatch):
    from vae_tut.experiments import RunConfig, cache_dir
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    entry = cache_dir() / RunConfig(epochs=1).resolved().key()
    entry.mkdir(parents=True)
    (entry / "result.json").write_text("{")
    _one_line_error(capsys, ["train", "--epochs", "1"], "unreadable")


def test_train_json_last_line(capsys, tiny_data, monkeypatch):
    import itertools
    from types import SimpleNamespace

    from vae_tut import train

    ticks = itertools.count(0.0, 1.5)  # a clock: each epoch starts and ends 1.5 s apart
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert main(["train", "--quick", "--epochs", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    for split in ("train", "test"):
        assert set(result[split]) == {"recon", "kl", "total"}
        assert result[split]["total"] == pytest.approx(result[split]["recon"] + result[split]["kl"])
    assert result["seconds"] == 1.5 and "  trained in 1.5 s" in out  # the one epoch's time, not the test pass
    assert result["quick"] is True and result["cached"] is False
    assert "QUICK MODE" in out[0]


def test_reproduce_writes_table(capsys, tiny_data, tmp_path):
    out_file = tmp_path / "table.md"
    assert main(["reproduce", "--quick", "--only", "ae", "--out", str(out_file)]) == 0
    table = out_file.read_text()
    assert "mlp-mnist-ae" in table and "QUICK MODE" in table


def test_module_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vae_tut", "train", "--z", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_non_finite_loss_one_line_exit_2(capsys, tiny_data):
    line = _one_line_error(capsys, ["train", "--quick", "--lr", "1e6"], "the training diverged")
    assert "the loss became nan in epoch 1;" in line


def test_truncated_data_file_one_line_exit_2(capsys, tiny_data):
    (tiny_data.raw / "train-images-idx3-ubyte").write_bytes(b"\0" * 1000)
    _one_line_error(capsys, ["train", "--quick"], "train-images-idx3-ubyte", "wrong size")


def test_checkpoint_of_another_config_one_line_exit_2(capsys, tiny_data, monkeypatch):
    import json as json_

    from vae_tut.experiments import RunConfig, cache_dir
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    assert main(["train", "--epochs", "1"]) == 0
    entry = cache_dir() / RunConfig(epochs=1).resolved().key()
    meta = json_.loads((entry / "result.json").read_text())
    meta["config"]["z"] = 3
    (entry / "result.json").write_text(json_.dumps(meta))
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--epochs", "1"], "another config")


def test_absent_device_one_line_exit_2(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _one_line_error(capsys, ["train", "--quick", "--device", "cuda"], "not available")


@pytest.mark.parametrize("out", ["missing-folder/table.md", "."])
def test_reproduce_checks_its_output_before_training(capsys, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, ["reproduce", "--quick", "--only", "ae", "--out", out], "--out")
    from vae_tut.experiments import cache_dir
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_reproduce_jobs_must_be_positive(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, ["reproduce", "--jobs", "0"], "jobs must be a whole number >= 1")


def test_a_root_that_is_a_file_one_line_exit_2(capsys, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    for variable, argv in [("VAE_TUT_CACHE", ["train", "--quick", "--epochs", "1"]),
                           ("VAE_TUT_DATA", ["data", "--dataset", "fashion-mnist", "--no-download"])]:
        with monkeypatch.context() as env:
            env.setenv(variable, str(tmp_path / "file"))
            line = _one_line_error(capsys, argv, "is a file, not a folder")
        assert line == (f"python -m vae_tut {argv[0]}: error: {tmp_path / 'file'} is a file, not a folder; "
                        f"point ${variable} at a folder")


def test_out_check_opens_the_file_and_leaves_it_as_it_was(tmp_path):
    """``reproduce`` opens ``--out`` for appending before training: no new file is left behind, an
    existing one keeps its content, and a file that cannot be created is a one-line ConfigError."""
    from vae_tut.cli import _check_writable
    from vae_tut.errors import ConfigError

    fresh, kept = tmp_path / "new.md", tmp_path / "old.md"
    kept.write_text("old table")
    _check_writable(fresh)
    _check_writable(kept)
    assert not fresh.exists() and kept.read_text() == "old table"
    with pytest.raises(ConfigError, match=r"--out /proc/x\.md cannot be written"):
        _check_writable(Path("/proc/x.md"))
