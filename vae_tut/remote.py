"""Published runs: a reader's build fetches the trained runs by key instead of training them.

Chapter 2 introduces the run cache; the Performance appendix counts the runs fetched and trained.
The book's workflow publishes the run cache beside the pages (:func:`publish`, ``python -m vae_tut
publish _build/html/runs``): one folder per finished entry, as the cache holds it, and an
``index.json`` with each file's SHA-256 and size. :func:`vae_tut.store.cached` asks :func:`fetch`
for an entry it lacks before computing it: the files are downloaded into a temporary folder beside
the entry, each checked against the index's size and SHA-256, and the folder is renamed into place;
then the entry is read by the same loader as a local one, which checks its own checksum and that it
was made for this config by this code. Anything off is one line on stderr and the entry is computed
here, as it is without a URL. The URL is ``$VAE_TUT_RUNS_URL`` when set (set but empty: never
fetch), else the package setting ``vae_tut/published.json`` that ``scripts/set_repository.py``
writes; empty, nothing is fetched. Only ``https://`` is accepted (``http://`` to this machine, for tests).

Why pooch (PyPI ``pooch``) and not ``urllib.request`` with ``hashlib``: the two would do for one
file, but pooch is maintained for exactly this (scientific data fetched by hash), streams each file
to a temporary name and moves it into place only once its hash matches (a partial or altered
download never looks finished) and draws a progress bar; its ``Pooch.fetch`` can also retry, which
``pooch.retrieve`` here does not (a failed download is one line and training here). What it lacks,
a cap on the bytes a server may send and a check of the size, is added here (:class:`_Capped`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import store
from .errors import CacheError

VARIABLE = "VAE_TUT_RUNS_URL"
SETTING = Path(__file__).with_name("published.json")  # {"runs_url": ""}, written by scripts/set_repository.py
FORMAT = 1
INDEX = "index.json"
ORIGIN = "origin.json"  # written into a fetched entry; no checksum covers it, no loader reads it
MAX_INDEX_BYTES = 16 << 20  # the whole book's index is a few kB per entry
MAX_FILE_BYTES = 256 << 20  # a CNN's weights are a few MB; GitHub Pages serves files up to 100 MB
TIMEOUT = 30.0  # seconds without an answer before a download is given up
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")  # an entry's file or folder name
NOT_RUNS = frozenset({"likelihood", "web", "classifier"})  # the cache's top-level folders that are not runs

_indexes: dict[str, dict[str, Any] | None] = {}  # URL -> its index (None: it failed), once per process
_fetched: set[Path] = set()  # entries fetched and not yet claimed by take_fetched
_said: set[str] = set()  # lines said once per process


def reset() -> None:
    """Forget this process's indexes, fetched entries and lines said (for tests)."""
    _indexes.clear()
    _fetched.clear()
    _said.clear()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        store.note(line)


class _Problem(Exception):
    """What went wrong with the published runs, as the middle of the one line."""


# ---------------------------------------------------------------- the URL


def _setting() -> str:
    """The package setting's ``runs_url`` (empty when the file is missing; a line when it is malformed)."""
    try:
        value = json.loads(SETTING.read_text(encoding="utf-8"))["runs_url"]
        if not isinstance(value, str):
            raise TypeError("not a string")
        return value.strip()
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, KeyError, TypeError) as err:
        _say_once(f'note: {SETTING} is not {{"runs_url": "..."}} ({type(err).__name__}); runs are trained here')
        return ""


def runs_url() -> str | None:
    """Where the published runs are: ``$VAE_TUT_RUNS_URL`` when set, else ``vae_tut/published.json``;
    ``None`` when empty, or (with one line) when it is not ``https://`` (``http://`` only to this machine)."""
    if VARIABLE in os.environ:
        url, where = os.environ[VARIABLE].strip(), f"${VARIABLE}"
    else:
        url, where = _setting(), str(SETTING)
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or not host
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(ch.isspace() for ch in url)
        or not (parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS))
    ):
        _say_once(
            f"note: runs URL {url} ({where}) refused: only an https:// folder (http:// only to this machine); "
            "training here instead"
        )
        return None
    return url if url.endswith("/") else url + "/"


# ---------------------------------------------------------------- downloading


class _Capped:
    """The file pooch's ``HTTPDownloader`` writes to: it refuses more than ``limit`` bytes."""

    def __init__(self, handle: BinaryIO, limit: int, label: str) -> None:
        self.handle, self.limit, self.label, self.size = handle, limit, label, 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _Problem(f"{self.label} is more than {self.limit:,} bytes")
        return self.handle.write(chunk)

    def flush(self) -> None:
        self.handle.flush()


def _downloader(label: str, size: int | None, limit: int, progress: bool) -> Callable[..., None]:
    """A pooch downloader: HTTP(S) with :data:`TIMEOUT`, at most ``limit`` bytes, exactly ``size`` if given."""
    import pooch

    http = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)

    def download(url: str, output_file: str | BinaryIO, pooch_: object = None, check_only: bool = False) -> None:
        if isinstance(output_file, (str, os.PathLike)):  # pooch.retrieve: a temporary file's path
            with open(output_file, "w+b") as handle:
                capped = _Capped(handle, limit, label)
                http(url, capped, pooch_)
        else:
            capped = _Capped(output_file, limit, label)
            http(url, capped, pooch_)
        if size is not None and capped.size != size:
            raise _Problem(f"{label} came as {capped.size:,} bytes, not the {size:,} of {INDEX} (truncated)")

    return download


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Keep pooch's own log lines ("Downloading data from ...") off stderr: one line per failure only."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _what(err: BaseException, label: str) -> str:
    """The middle of the one line for a failed download of ``label``."""
    if isinstance(err, _Problem):
        return str(err)
    if isinstance(err, ImportError):  # an environment made before pooch was a dependency
        return f"it needs PyPI pooch ({err.name or err} is missing; pip install -e .)"
    import requests  # pooch's dependency: there when pooch imported

    text = str(err)
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"{label}: HTTP {err.response.status_code} {err.response.reason or ''}".rstrip()
    if isinstance(err, requests.Timeout) or "timed out" in text.lower():
        return f"{label}: no answer within {TIMEOUT:g} s"
    if isinstance(err, requests.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
        return f"{label}: cannot connect ({found.group(1).strip() if found else 'connection failed'})"
    if isinstance(err, requests.RequestException):
        return f"{label}: {type(err).__name__}"
    if isinstance(err, ValueError) and "hash" in text:  # pooch's check of the known hash
        return f"{label} does not match its SHA-256 in {INDEX} (changed or damaged)"
    if isinstance(err, OSError):
        return f"{err.filename or label}: {store.reason(err)}"
    return f"{label}: {type(err).__name__}"


def _index(url: str) -> dict[str, Any] | None:
    """The published ``index.json`` at ``url``, fetched once per process; ``None`` (one line) if it fails."""
    if url in _indexes:
        return _indexes[url]
    index = None
    try:
        buffer = io.BytesIO()
        with _quiet_pooch():
            _downloader(INDEX, None, MAX_INDEX_BYTES, False)(url + INDEX, buffer)
        try:
            index = json.loads(buffer.getvalue())
        except (ValueError, RecursionError):
            raise _Problem(f"{INDEX} is not JSON") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("entries"), dict):
            raise _Problem(f"{INDEX} is not an index of published runs (format {FORMAT})")
    except Exception as err:  # noqa: BLE001 - any failure is one line and training here
        store.note(f"note: runs URL {url}: {_what(err, INDEX)}; training here instead")
        index = None
    _indexes[url] = index
    return index


def _published_files(index: dict[str, Any], rel: str) -> dict[str, tuple[str, int]]:
    """Each file of entry ``rel`` in ``index``: name -> (SHA-256, size), checked; a :class:`_Problem` if off."""
    entry = index["entries"].get(rel)
    if entry is None:
        if rel.startswith("likelihood/"):
            from .likelihood import CODE_VERSION as here

            theirs = index.get("likelihood_code_version")
        else:
            from .experiments import CODE_VERSION as here

            theirs = index.get("code_version")
        other = f" (published by code {theirs!s:.20}, this is {here})" if theirs != here else ""
        raise _Problem(f"it has no entry {rel}{other}")
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, dict) or not files:
        raise _Problem(f"{INDEX}: the entry {rel} lists no files")
    checked = {}
    for name, info in files.items():
        sha256 = info.get("sha256") if isinstance(info, dict) else None
        size = info.get("size") if isinstance(info, dict) else None
        if not (
            isinstance(name, str)
            and NAME_RE.fullmatch(name)
            and name != ORIGIN
            and isinstance(sha256, str)
            and re.fullmatch(r"[0-9a-f]{64}", sha256)
            and type(size) is int
            and size >= 0
        ):
            raise _Problem(f"{INDEX}: the entry {rel} has a malformed file {name!r:.60}")
        if size > MAX_FILE_BYTES:
            raise _Problem(f"{rel}/{name} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a file may have")
        checked[name] = (sha256, size)
    return checked


def fetch(folder: Path, root: Path) -> bool:
    """Fetch the cache entry ``folder`` (a run, or ``likelihood/<name>``, under the runs ``root``) from
    the published runs (:func:`runs_url`) and move it into place; whether it was. Any failure is one
    line on stderr and ``False``: the caller computes the entry as without a URL."""
    from .train import progress_enabled

    folder, root = Path(folder), Path(root)
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        return False
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "likelihood")) or parts[-1].startswith("."):
        return False  # web/ and classifier/ entries are not published
    url = runs_url()
    if url is None:
        return False
    index = _index(url)
    if index is None:
        return False
    rel = "/".join(parts)
    tmp = None
    try:
        import pooch

        files = _published_files(index, rel)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
        base = url + "/".join(urllib.parse.quote(part) for part in parts) + "/"
        progress = progress_enabled()
        with _quiet_pooch():
            for name, (sha256, size) in sorted(files.items()):
                label = f"{rel}/{name}"
                try:
                    pooch.retrieve(
                        base + urllib.parse.quote(name),
                        known_hash=f"sha256:{sha256}",
                        path=tmp,
                        fname=name,
                        progressbar=progress,
                        downloader=_downloader(label, size, size, progress),
                    )
                except Exception as err:  # noqa: BLE001 - named by the file
                    raise _Problem(_what(err, label)) from None
        (tmp / ORIGIN).write_text(json.dumps({"origin": "fetched", "from": url}, indent=1) + "\n")
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        tmp.rename(folder)
        tmp = None
    except Exception as err:  # noqa: BLE001 - any failure is one line and computing here
        instead = "training here instead" if len(parts) == 1 else "computing it here instead"
        store.note(f"note: runs URL {url}: {_what(err, rel)}; {instead}")
        return False
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _fetched.add(folder)
    return True


def take_fetched(folder: Path) -> bool:
    """Whether ``folder`` was fetched by this process since the last call for it (``Run.origin``)."""
    try:
        _fetched.remove(Path(folder))
    except KeyError:
        return False
    return True


def was_fetched(folder: Path) -> bool:
    """Whether the cache entry ``folder`` holds the ``origin.json`` that :func:`fetch` writes."""
    try:
        return json.loads(store.read_regular(Path(folder) / ORIGIN, 1 << 16)).get("origin") == "fetched"
    except (OSError, ValueError, AttributeError, CacheError):
        return False


def _hidden(name: str) -> bool:
    """Locks, scratch, temporary and replaced folders: ``.partial-*``, ``.tmp-*``, ``.old-*``, ``*.lock``."""
    return name.startswith(".") or name.endswith(".lock")


def _run_entries(source: Path) -> Iterator[Path]:
    """The folders at the top of the run cache ``source`` that may be runs."""
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if not _hidden(path.name) and path.name not in NOT_RUNS and path.is_dir() and not path.is_symlink():
                yield path


def origin_counts(cache: str | os.PathLike | None = None) -> dict[str, int]:
    """How many runs in the run cache were fetched (:func:`fetch`) and how many trained here
    (the Performance appendix glues them)."""
    from .experiments import cache_dir

    counts = {"fetched": 0, "trained": 0}
    for path in _run_entries(cache_dir(cache)):
        if (path / "result.json").is_file():
            counts["fetched" if was_fetched(path) else "trained"] += 1
    return counts


def count_origins(folders: Iterable[Path], before: set[Path]) -> dict[str, int]:
    """How many of the run entries ``folders`` were ``cached`` (in ``before``, the entries there
    before the work), ``fetched`` since (they hold ``origin.json``) or ``trained`` (``reproduce``'s line)."""
    counts = {"trained": 0, "fetched": 0, "cached": 0}
    for folder in folders:
        counts["cached" if folder in before else "fetched" if was_fetched(folder) else "trained"] += 1
    return counts


# ---------------------------------------------------------------- publishing


def _candidates(source: Path) -> Iterator[tuple[str, Path]]:
    """Each folder of the run cache that may be published, with its path relative to the cache."""
    for path in _run_entries(source):
        yield path.name, path
    likelihood = source / "likelihood"
    if likelihood.is_dir() and not likelihood.is_symlink():
        for path in sorted(likelihood.iterdir()):
            if not _hidden(path.name) and path.is_dir() and not path.is_symlink():
                yield f"likelihood/{path.name}", path


def _reader_check(rel: str, folder: Path) -> list[Path]:
    """The files of a finished entry that passes its reader's check; a :class:`CacheError` otherwise."""
    if rel.startswith("likelihood/"):
        from .likelihood import MAX_RESULT_BYTES, _numbers_checksum

        saved = json.loads(store.read_regular(folder / "result.json", MAX_RESULT_BYTES))
        if not isinstance(saved, dict) or "key" not in saved or saved.pop("checksum", None) != _numbers_checksum(saved):
            raise CacheError("its numbers do not match their checksum")
    else:
        from .experiments import CODE_VERSION, METRICS

        meta, _ = store.read_entry(folder, "model.pt", METRICS, "cache entry", "left out")
        if meta.get("code_version") != CODE_VERSION:
            raise CacheError("made by other training code")
    files = []
    for path in sorted(folder.iterdir()):
        if path.name == ORIGIN:
            continue
        if not NAME_RE.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            raise CacheError(f"it holds {path.name!r:.60}, not a plain file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CacheError(f"{path.name} is more than {MAX_FILE_BYTES:,} bytes")
        files.append(path)
    return files


def _copy(source: Path, target: Path) -> dict[str, Any]:
    """Copy a file; its SHA-256 and size as the index lists them."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reading, open(target, "wb") as writing:
        while chunk := reading.read(1 << 20):
            digest.update(chunk)
            writing.write(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def publish(dest: str | os.PathLike, cache: str | os.PathLike | None = None) -> int:
    """Write the finished entries of the run cache to the folder ``dest`` for :func:`fetch`; how many.

    Runs (the cache's top level) and likelihood estimates (``likelihood/<name>``) that pass their
    reader's check (checksum; a run also made by this code), each file copied, and ``index.json``
    (format, code versions, each entry's files with SHA-256 and size). Written in a temporary
    folder and renamed into place; an existing ``dest`` is replaced only if it holds an earlier
    index (or nothing). A failure is a one-line :class:`CacheError`.
    """
    from . import likelihood
    from .experiments import CODE_VERSION, cache_dir

    source, dest = cache_dir(cache), Path(dest)
    tmp = old = None
    try:
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise CacheError(f"{dest} is not a folder; name a new folder to publish the runs to")
        if dest.is_dir() and any(dest.iterdir()) and not (dest / INDEX).is_file():
            raise CacheError(f"{dest} holds files but no {INDEX} (not published runs); name a new or empty folder")
        here, there = source.resolve(), dest.resolve()
        if there == here or here in there.parents or there in here.parents:
            raise CacheError(f"{dest} overlaps the run cache {source}; name a folder outside it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
        entries: dict[str, Any] = {}
        left_out: list[str] = []
        for rel, folder in _candidates(source):
            try:
                files = _reader_check(rel, folder)
            except (CacheError, OSError, ValueError, RecursionError) as err:
                left_out.append(f"{folder}: {err}")
                continue
            (tmp / rel).mkdir(parents=True)
            entries[rel] = {"files": {path.name: _copy(path, tmp / rel / path.name) for path in files}}
        index = {
            "format": FORMAT,
            "code_version": CODE_VERSION,
            "likelihood_code_version": likelihood.CODE_VERSION,
            "entries": entries,
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".old-{dest.name}-"))
            dest.rename(old / dest.name)
        tmp.rename(dest)
        tmp = None
    except OSError as err:
        raise CacheError(
            f"cannot publish the runs to {dest} ({err.filename}: {store.reason(err)}); "
            "free some space or name another folder"
        ) from None
    finally:
        for path in (tmp, old):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
    if left_out:
        store.note(f"note: left out {len(left_out)} cache entries that fail their check (first: {left_out[0]})")
    return len(entries)


def published_bytes(dest: str | os.PathLike) -> int:
    """The bytes of every file ``dest/index.json`` lists (for ``python -m vae_tut publish``'s line)."""
    index = json.loads((Path(dest) / INDEX).read_text())
    return sum(info["size"] for entry in index["entries"].values() for info in entry["files"].values())
