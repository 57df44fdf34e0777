"""Where vae_tut keeps things on disk (chapter 2): :func:`cached`, a folder per result named by a hash of its key
(and the :func:`code_version` of its code), written whole under a file lock; a fault is a one-line CacheError."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from .errors import CacheError, ConfigError, DataError
from .validation import finite, one_of

T = TypeVar("T")
ROOTS = {"data": "VAE_TUT_DATA", "runs": "VAE_TUT_CACHE"}
MAX_ENTRY_BYTES = 1 << 30  # no cache file of the book comes near 1 GiB
LOCK_TIMEOUT = 2 * 3600.0  # seconds to wait for another process's lock: longer than any one training run
LOCK_NOTE_AFTER = 2.0  # seconds of waiting before saying so on stderr


def reason(err: OSError) -> str:
    """The short cause of an OS error for a one-line message (e.g. ``File name too long``)."""
    return err.strerror or str(err) or type(err).__name__


def root(kind: str, override: str | os.PathLike | None = None) -> Path:
    """The folder for ``kind`` (``data`` or ``runs``): ``override``, else its variable, else the user cache's."""
    variable = ROOTS[one_of(kind, ROOTS, "root")]
    if override is not None and not isinstance(override, (str, os.PathLike)):
        raise ConfigError(f"the {kind} folder must be a path (str or pathlib.Path), got {type(override).__name__}")
    if chosen := os.fspath(override or "") or os.environ.get(variable):
        path = Path(chosen).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("vae_tut", appauthor=False)) / kind
    error = DataError if kind == "data" else CacheError
    try:
        exists, is_link = path.exists(), path.is_symlink()
    except OSError as err:
        raise error(f"{path} cannot be used as a folder ({reason(err)}); point ${variable} at another folder") from None
    if is_link and not exists:
        raise error(f"{path} is a broken symbolic link (to {os.readlink(path)}); point ${variable} at a folder")
    if exists and not path.is_dir():
        raise error(f"{path} is a file, not a folder; point ${variable} at a folder")
    return path


def _encoded(name: str, content: Any) -> bytes:
    """The bytes of one file of an entry: ``content`` itself, JSON (``*.json``) or ``torch.save``'s."""
    if isinstance(content, bytes):
        return content
    if name.endswith(".json"):
        return json.dumps(content, indent=1, sort_keys=True).encode()
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A fresh folder to fill, which then replaces ``final`` whole (synced, renamed); removed if the block fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".tmp-{final.name}-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp) / final.name
        folder.mkdir()
        yield folder
        for path in filter(Path.is_file, folder.iterdir()):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            final.rename(Path(tmp) / ".old")  # removed with the temporary folder
        folder.rename(final)


def write_atomic_dir(final: Path, files: dict[str, Any]) -> None:
    """Write ``files`` (name -> bytes, JSON for ``*.json``, or torch object) as the folder ``final``, atomically."""
    blobs: dict[str, bytes] = {}
    try:
        blobs = {name: _encoded(name, content) for name, content in files.items()}
        with atomic_dir(Path(final)) as tmp:
            for name, blob in blobs.items():
                (tmp / name).write_bytes(blob)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        cause = reason(err) if isinstance(err, OSError) else (str(err).strip().splitlines() or [""])[0][:200]
        size = f"; it needs {sum(map(len, blobs.values())):,} bytes" if len(blobs) == len(files) else ""
        raise CacheError(
            f"cannot write the cache entry {final} ({cause or type(err).__name__}){size}; "
            "free some space or point $VAE_TUT_CACHE elsewhere"
        ) from None


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0].value if node.body and isinstance(node.body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def _canonical(node: object) -> str:
    """A text form of a syntax tree that is the same on Python 3.10 to 3.13 (``ast.dump``'s is not)."""
    if isinstance(node, ast.AST):
        parts = [type(node).__name__]
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(node, ast.JoinedStr) and name == "values":
                value = [v for v in node.values if not (isinstance(v, ast.Constant) and v.value == "")]
            if name in ("type_comment", "kind") or value is None or value == []:
                continue
            parts.append(f"{name}={_canonical(value)}")
        return "(" + " ".join(parts) + ")"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    return repr(node)


def source_digest(sources: Iterable[str]) -> str:
    """Hash of Python sources' syntax trees: comments, docstrings, layout and Python 3.10-3.13 do not count."""
    digest = hashlib.sha256()
    for source in sources:
        tree = _without_docstrings(ast.parse(textwrap.dedent(source)))
        digest.update(_canonical(tree).encode())
    return digest.hexdigest()[:16]


def code_version(objects: Iterable[Any]) -> str:
    """:func:`source_digest` of objects as they are on disk now: call it at import, to describe the code that runs."""
    return source_digest([inspect.getsource(obj) for obj in objects])


def key_digest(key: dict[str, Any]) -> str:
    """A short hash of a JSON-able key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def checksum(fields: dict[str, Any], blob: bytes = b"") -> str:
    """SHA-256 of ``blob`` and ``fields`` as sorted JSON: an entry's ``checksum``, which catches an edit or damage."""
    return hashlib.sha256(blob + json.dumps(fields, sort_keys=True).encode()).hexdigest()


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of the weights ``model`` holds now: the key of what is computed from it."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{list(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_weights(model: torch.nn.Module, blob: bytes, what: str, advice: str) -> torch.nn.Module:
    """``model`` with the state dict in ``blob`` loaded weights-only; a misfit is a one-line :class:`CacheError`."""
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling error means the same thing
        raise CacheError(f"{what} is unreadable ({type(err).__name__}); {advice}") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise CacheError(f"{what}: its weights do not fit the model ({first}); {advice}") from None
    return model


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if a regular file (no link, FIFO or device) of at most ``max_bytes``; never reads more."""
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CacheError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise CacheError(f"{path} is {info.st_size:,} bytes, more than the {max_bytes:,} it may have")
        blob = handle.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise CacheError(f"{path} grew beyond {max_bytes:,} bytes while it was read")
    return blob


def read_entry(
    entry: Path, blob_name: str, fields: Sequence[str], what: str, advice: str, meta_name: str = "result.json"
) -> tuple[dict, bytes]:
    """The metadata (``meta_name``) and file ``blob_name`` of a cache entry, checked against its :func:`checksum`."""
    try:
        meta = json.loads(read_regular(entry / meta_name, MAX_ENTRY_BYTES))
        blob = read_regular(entry / blob_name, MAX_ENTRY_BYTES)
    except (OSError, ValueError, RecursionError, CacheError) as err:  # RecursionError: JSON nested too deep
        cause = err if isinstance(err, CacheError) else type(err).__name__
        raise CacheError(f"{what} {entry} is unreadable ({cause}); {advice}") from None
    if not isinstance(meta, dict) or any(k not in meta for k in (*fields, "checksum")):
        raise CacheError(f"{what} {entry}: {meta_name} lacks {', '.join(fields)}; {advice}")
    if meta["checksum"] != checksum({k: meta[k] for k in fields}, blob):
        raise CacheError(
            f"{what} {entry}: {blob_name} or {meta_name} does not match its checksum "
            f"(changed or corrupted after it was written); {advice}"
        )
    return meta, blob


def _lock(path: Path, timeout: float | None = None) -> Any:
    """Hold the lock file ``path`` until the ``with`` ends (saying so while it waits, at most ``timeout`` s)."""
    from filelock import FileLock, Timeout

    timeout = LOCK_TIMEOUT if timeout is None else finite(timeout, "lock timeout", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # create the file first: filelock retries for ever where a folder refuses new files (e.g. /proc)
        if path.is_symlink():
            raise CacheError(f"{path} is a symbolic link ({os.readlink(path)}); delete it (a lock is a plain file)")
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666))
        except PermissionError:
            if not path.exists():  # an existing lock file of another user is still lockable
                raise
        if not path.is_file():
            raise CacheError(f"{path} is not a regular file; delete it (a lock file is a plain file)")
        lock = FileLock(str(path))
        try:
            return lock.acquire(timeout=min(LOCK_NOTE_AFTER, timeout))
        except Timeout:
            if timeout <= LOCK_NOTE_AFTER:
                raise
            note(f"waiting for {path} (held by another process)")
            return lock.acquire(timeout=timeout - LOCK_NOTE_AFTER)
    except Timeout:
        raise CacheError(
            f"{path} is still held by another process after {timeout:g} s; "
            "if no other vae_tut process runs, delete the lock file"
        ) from None
    except OSError as err:
        raise CacheError(
            f"cannot write the lock file {path} ({reason(err)}); "
            "make the cache folder writable or point $VAE_TUT_CACHE elsewhere"
        ) from None


def cached(
    folder: Path,
    compute: Callable[[Path], tuple[T, dict[str, Any]]],
    load: Callable[[Path], T],
    *,
    refresh: bool = False,
    timeout: float | None = None,
) -> tuple[T, bool]:
    """``load(folder)``, else fetched (:func:`vae_tut.remote.fetch`) or computed (``compute(scratch)`` returns it and
    the entry's files) and stored under a lock file; plus whether it was stored. ``refresh`` computes it again."""
    from . import remote

    folder = Path(folder)
    with contextlib.suppress(CacheError, OSError):  # maybe being replaced right now: look again under the lock
        if not refresh and folder.is_dir():
            return load(folder), True
    with _lock(folder.with_name(f".{folder.name}.lock"), timeout):
        if folder.is_dir() and not refresh:
            try:
                return load(folder), True
            except OSError as err:
                raise CacheError(f"cache entry {folder} is unreadable ({reason(err)}); delete it") from None
        if not refresh and remote.fetch(folder):
            try:
                return load(folder), True
            except (CacheError, OSError) as err:
                # the loader's advice ("delete it ...") is what happens here: leave it out
                detail = str(err).rsplit("; ", 1)[0] if isinstance(err, CacheError) else f"{folder}: {reason(err)}"
                note(f"note: a fetched entry failed its check ({detail}); computing it here instead")
                shutil.rmtree(folder, ignore_errors=True)
                remote.take_fetched(folder)
        scratch = folder.with_name(f".partial-{folder.name}")
        if refresh:
            shutil.rmtree(scratch, ignore_errors=True)
        value, files = compute(scratch)
        write_atomic_dir(folder, files)
        shutil.rmtree(scratch, ignore_errors=True)
        return value, False


def note(message: str) -> None:
    """One line for the reader on stderr."""
    print(message, file=sys.stderr, flush=True)
