"""Published runs, fetched by key instead of trained (chapter 2): :func:`publish` writes cache entries with an
``index.json`` of SHA-256s and sizes; :func:`fetch` gets one, or says in one line why not and it is computed here."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import store
from .errors import CacheError
from .train import progress_enabled

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

_fetched: dict[Path, bool] = {}  # entries fetched and not yet claimed by take_fetched
_say_once = functools.cache(store.note)  # a line said once per process


def reset() -> None:
    """Forget this process's indexes, fetched entries and lines said (for tests)."""
    _index.cache_clear()
    _say_once.cache_clear()
    _fetched.clear()


def _setting() -> str:
    """The package setting's ``runs_url`` (empty when the file is missing; a line when it is malformed)."""
    try:
        return json.loads(SETTING.read_text(encoding="utf-8"))["runs_url"].strip()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if not isinstance(err, FileNotFoundError):
            _say_once(f'note: {SETTING} is not {{"runs_url": "..."}} ({type(err).__name__}); runs are trained here')
        return ""


def runs_url() -> str | None:
    """The runs' URL: ``$VAE_TUT_RUNS_URL``, else ``vae_tut/published.json``'s; ``None`` if unset or refused."""
    url = os.environ[VARIABLE].strip() if VARIABLE in os.environ else _setting()
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        allowed = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)
        refused = not (allowed and parts.hostname) or parts.username is not None or bool(parts.query or parts.fragment)
    except ValueError:
        refused = True
    if refused or any(ch.isspace() for ch in url):
        where = f"${VARIABLE}" if VARIABLE in os.environ else SETTING
        _say_once(
            f"note: runs URL {url} ({where}) refused: only an https:// folder (http:// only to this machine); "
            "training here instead"
        )
        return None
    return url if url.endswith("/") else url + "/"


def _download(url: str, label: str, limit: int, progress: bool = False) -> bytes:
    """The bytes at ``url`` by pooch's HTTP downloader (:data:`TIMEOUT`); over ``limit`` is a :class:`CacheError`."""
    import pooch

    class Capped(io.BytesIO):  # the buffer pooch writes to
        def write(self, chunk: Any) -> int:
            if self.tell() + len(chunk) > limit:
                raise CacheError(f"{label} is more than {limit:,} bytes")
            return super().write(chunk)

    pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)(url, capped := Capped(), None)
    return capped.getvalue()


def _what(err: BaseException, label: str) -> str:
    """The middle of the one line for a failed download of ``label``."""
    if isinstance(err, CacheError):  # what went wrong, said here
        return str(err)
    if isinstance(err, ImportError):  # an environment made before pooch was a dependency
        return f"it needs PyPI pooch ({err.name or err} is missing; pip install -e .)"
    import requests  # pooch's dependency: there when pooch imported

    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"{label}: HTTP {err.response.status_code} {err.response.reason or ''}".rstrip()
    if isinstance(err, requests.Timeout) or "timed out" in str(err).lower():
        return f"{label}: no answer within {TIMEOUT:g} s"
    if isinstance(err, requests.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(err))
        return f"{label}: cannot connect ({found.group(1).strip() if found else 'connection failed'})"
    if isinstance(err, OSError):
        return f"{err.filename or label}: {store.reason(err)}"
    return f"{label}: {type(err).__name__}"


@functools.cache
def _index(url: str) -> dict[str, Any] | None:
    """The published ``index.json`` at ``url``, fetched once per process; ``None`` (one line) if it fails."""
    try:
        blob = _download(url + INDEX, INDEX, MAX_INDEX_BYTES)
        try:
            index = json.loads(blob)
        except (ValueError, RecursionError):
            raise CacheError(f"{INDEX} is not JSON") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("entries"), dict):
            raise CacheError(f"{INDEX} is not an index of published runs (format {FORMAT})")
        return index
    except Exception as err:  # noqa: BLE001 - any failure is one line and training here
        store.note(f"note: runs URL {url}: {_what(err, INDEX)}; training here instead")
        return None


def _published_files(index: dict[str, Any], rel: str) -> dict[str, dict[str, Any]]:
    """The files of entry ``rel`` in ``index`` (name -> SHA-256 and size), checked; a :class:`CacheError` if off."""
    entry = index["entries"].get(rel)
    if entry is None:
        from . import experiments, likelihood

        module, field = (likelihood, "likelihood_code_version") if "/" in rel else (experiments, "code_version")
        theirs = index.get(field)
        other = f" (published by code {theirs!s:.20}, this is {module.CODE_VERSION})"
        raise CacheError(f"it has no entry {rel}{other if theirs != module.CODE_VERSION else ''}")
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, dict) or not files:
        raise CacheError(f"{INDEX}: the entry {rel} lists no files")
    for name, info in files.items():
        sha256, size = (info.get("sha256"), info.get("size")) if isinstance(info, dict) else (None, None)
        well_formed = isinstance(sha256, str) and re.fullmatch("[0-9a-f]{64}", sha256) and NAME_RE.fullmatch(name)
        if not (well_formed and name != ORIGIN and type(size) is int and size >= 0):
            raise CacheError(f"{INDEX}: the entry {rel} has a malformed file {name!r:.60}")
        if size > MAX_FILE_BYTES:
            raise CacheError(f"{rel}/{name} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a file may have")
    return files


def fetch(folder: Path) -> bool:
    """Fetch the cache entry ``folder`` (a run or ``likelihood/<name>``) from :func:`runs_url`; whether it was."""
    try:
        parts = Path(folder).relative_to(store.root("runs")).parts
    except (ValueError, CacheError):
        return False
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "likelihood")) or parts[-1].startswith("."):
        return False  # web/ and classifier/ entries are not published
    if (url := runs_url()) is None or (index := _index(url)) is None:
        return False
    label = rel = "/".join(parts)
    try:
        files = _published_files(index, rel)
        with store.atomic_dir(Path(folder)) as tmp:
            for name, info in sorted(files.items()):
                label, size = f"{rel}/{name}", info["size"]
                blob = _download(url + urllib.parse.quote(label), label, size, progress_enabled())
                if len(blob) != size:
                    raise CacheError(f"{label} came as {len(blob):,} bytes, not the {size:,} of {INDEX} (truncated)")
                if hashlib.sha256(blob).hexdigest() != info["sha256"]:
                    raise CacheError(f"{label} does not match its SHA-256 in {INDEX} (changed or damaged)")
                (tmp / name).write_bytes(blob)
            (tmp / ORIGIN).write_text(json.dumps({"origin": "fetched", "from": url}, indent=1) + "\n")
    except Exception as err:  # noqa: BLE001 - any failure is one line and computing here
        instead = "training here instead" if len(parts) == 1 else "computing it here instead"
        store.note(f"note: runs URL {url}: {_what(err, label)}; {instead}")
        return False
    _fetched[Path(folder)] = True
    return True


def take_fetched(folder: Path) -> bool:
    """Whether ``folder`` was fetched by this process since the last call for it (``Run.origin``)."""
    return _fetched.pop(Path(folder), False)


def was_fetched(folder: Path) -> bool:
    """Whether the cache entry ``folder`` holds the ``origin.json`` that :func:`fetch` writes."""
    try:
        return json.loads(store.read_regular(Path(folder) / ORIGIN, 1 << 16)).get("origin") == "fetched"
    except (OSError, ValueError, AttributeError, CacheError):
        return False


def _folders(parent: Path) -> list[Path]:
    """The entry folders in ``parent``: no links, no lock, scratch, temporary or replaced ones (``.*``)."""
    if not parent.is_dir():
        return []
    return [p for p in sorted(parent.iterdir()) if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()]


def _entries(source: Path) -> list[tuple[str, Path]]:
    """Each entry of the run cache ``source`` with its path relative to it: runs, then likelihood estimates."""
    runs = [(path.name, path) for path in _folders(source) if path.name not in NOT_RUNS]
    likelihood = source / "likelihood"
    return runs + ([] if likelihood.is_symlink() else [(f"likelihood/{p.name}", p) for p in _folders(likelihood)])


def origin_counts(cache: str | os.PathLike | None = None) -> dict[str, int]:
    """How many runs of the run cache were fetched and how many trained here (the Performance appendix)."""
    from .experiments import cache_dir

    runs = [path for rel, path in _entries(cache_dir(cache)) if "/" not in rel and (path / "result.json").is_file()]
    fetched = sum(map(was_fetched, runs))
    return {"fetched": fetched, "trained": len(runs) - fetched}


def count_origins(folders: Iterable[Path], before: set[Path]) -> dict[str, int]:
    """How many of the run entries ``folders`` were ``cached`` (in ``before``), ``fetched`` or ``trained``."""
    counts = {"trained": 0, "fetched": 0, "cached": 0}
    for folder in folders:
        counts["cached" if folder in before else "fetched" if was_fetched(folder) else "trained"] += 1
    return counts


def _checked(rel: str, folder: Path) -> dict[str, bytes]:
    """The files of a finished entry that passes its reader's check, by name; a :class:`CacheError` otherwise."""
    if "/" in rel:
        from .likelihood import MAX_RESULT_BYTES, _numbers_checksum

        result = store.read_regular(folder / "result.json", MAX_RESULT_BYTES)
        saved = json.loads(result)
        if not isinstance(saved, dict) or "key" not in saved or saved.pop("checksum", None) != _numbers_checksum(saved):
            raise CacheError("its numbers do not match their checksum")
        return {"result.json": result}
    from .experiments import CODE_VERSION, METRICS

    meta, weights = store.read_entry(folder, "model.pt", METRICS, "cache entry", "left out")
    if meta.get("code_version") != CODE_VERSION:
        raise CacheError("made by other training code")
    if len(weights) > MAX_FILE_BYTES:
        raise CacheError(f"model.pt is {len(weights):,} bytes, more than the {MAX_FILE_BYTES:,} a file may have")
    return {"model.pt": weights, "result.json": store.read_regular(folder / "result.json", MAX_FILE_BYTES)}


def publish(dest: str | os.PathLike, cache: str | os.PathLike | None = None) -> int:
    """Write the cache entries that pass their check, and their ``index.json``, as the folder ``dest``; how many."""
    from . import likelihood
    from .experiments import CODE_VERSION, cache_dir

    source, dest = cache_dir(cache), Path(dest)
    entries: dict[str, Any] = {}
    left_out: list[str] = []
    try:
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise CacheError(f"{dest} is not a folder; name a new folder to publish the runs to")
        if dest.is_dir() and any(dest.iterdir()) and not (dest / INDEX).is_file():
            raise CacheError(f"{dest} holds files but no {INDEX} (not published runs); name a new or empty folder")
        if dest.resolve().is_relative_to(source.resolve()) or source.resolve().is_relative_to(dest.resolve()):
            raise CacheError(f"{dest} overlaps the run cache {source}; name a folder outside it")
        with store.atomic_dir(dest) as tmp:
            for rel, folder in _entries(source):
                try:
                    blobs = _checked(rel, folder)
                except (CacheError, OSError, ValueError, RecursionError) as err:
                    left_out.append(f"{folder}: {err}")
                    continue
                (tmp / rel).mkdir(parents=True)
                entries[rel] = {"files": {}}
                for name, blob in blobs.items():
                    (tmp / rel / name).write_bytes(blob)
                    entries[rel]["files"][name] = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
            index = {"format": FORMAT, "code_version": CODE_VERSION, "likelihood_code_version": likelihood.CODE_VERSION}
            (tmp / INDEX).write_text(json.dumps({**index, "entries": entries}, indent=1, sort_keys=True) + "\n")
    except OSError as err:
        advice = "free some space or name another folder"
        raise CacheError(f"cannot publish the runs to {dest} ({err.filename}: {store.reason(err)}); {advice}") from None
    if left_out:
        store.note(f"note: left out {len(left_out)} cache entries that fail their check (first: {left_out[0]})")
    return len(entries)


def published_bytes(dest: str | os.PathLike) -> int:
    """The bytes of every file ``dest/index.json`` lists (for ``python -m vae_tut publish``'s line)."""
    index = json.loads((Path(dest) / INDEX).read_text())
    return sum(info["size"] for entry in index["entries"].values() for info in entry["files"].values())
