"""Where vae_tut keeps things on disk, and the one way it writes there (chapter 2 introduces the cache).

Two roots, one rule: ``$VAE_TUT_DATA`` or ``$VAE_TUT_CACHE`` when set, else a
folder in the user's cache directory (``platformdirs``; ``~/.cache/vae_tut`` on
Linux). :func:`cached` is the single entry point for every result that is
expensive to recompute (trained runs, likelihood estimates): an entry is a
folder named by a hash of a key, filled in a temporary folder and renamed into
place, computed under a file lock so that two processes asking for the same
entry at once compute it once and both read the same result. A process that
waits for the lock says so on stderr and gives up after :data:`LOCK_TIMEOUT`;
every file-system fault here is a one-line :class:`CacheError` naming the path.

The key of an entry includes :func:`code_version` of the functions that compute
it: a hash of their syntax trees without docstrings, so rewording a docstring or
a comment keeps every entry while any change to the code makes a new one.
"""

from __future__ import annotations

import ast
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

from .errors import CacheError, ConfigError, DataError
from .validation import finite, one_of

T = TypeVar("T")
ROOTS = {"data": "VAE_TUT_DATA", "runs": "VAE_TUT_CACHE"}


def reason(err: OSError) -> str:
    """The short cause of an OS error for a one-line message (e.g. ``File name too long``)."""
    return err.strerror or str(err) or type(err).__name__


def root(kind: str, override: str | os.PathLike | None = None) -> Path:
    """The folder for ``kind`` (``data`` or ``runs``): ``override``, else its variable, else the user cache.

    An empty ``override`` or variable means the default, the same for both; an ``override`` that is
    no path (e.g. a number) is a one-line :class:`ConfigError`. A path that is a file, a broken
    symbolic link or cannot be looked at (e.g. a name over 255 characters) is a one-line
    :class:`DataError` (data) or :class:`CacheError` (runs).
    """
    kind = one_of(kind, ROOTS, "root")
    variable = ROOTS[kind]
    if override is not None and not isinstance(override, (str, os.PathLike)):
        raise ConfigError(f"the {kind} folder must be a path (str or pathlib.Path), got {type(override).__name__}")
    if override is not None and os.fspath(override) != "":
        path = Path(override).expanduser()
    elif os.environ.get(variable):
        path = Path(os.environ[variable]).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("vae_tut", appauthor=False)) / kind
    error = DataError if kind == "data" else CacheError
    try:
        exists, is_link = path.exists(), path.is_symlink()
    except OSError as err:
        raise error(
            f"{path}: cannot be used as a folder ({reason(err)}); point ${variable} at another folder"
        ) from None
    if is_link and not exists:
        raise error(f"{path} is a broken symbolic link (to {os.readlink(path)}); point ${variable} at a folder")
    if exists and not path.is_dir():
        raise error(f"{path} is a file, not a folder; point ${variable} at a folder")
    return path


# ---------------------------------------------------------------- writing


def _encoded(name: str, content: Any) -> bytes:
    """The bytes of one file of an entry: ``content`` itself, JSON (``*.json``) or ``torch.save``'s."""
    if isinstance(content, bytes):
        return content
    if name.endswith(".json"):
        return json.dumps(content, indent=1, sort_keys=True).encode()
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def write_atomic_dir(final: Path, files: dict[str, Any]) -> None:
    """Write ``files`` as the folder ``final``: name -> bytes, a JSON-able value (``*.json``) or a torch object.

    The files are written and synced in a fresh temporary folder beside ``final``,
    which is then renamed into place: a reader sees the whole entry or none.
    An existing ``final`` is replaced, and survives a write that fails (e.g. a full
    disk), which is a one-line :class:`CacheError` naming ``final`` and the bytes it needs.
    """
    final = Path(final)
    blobs: dict[str, bytes] = {}
    tmp = None
    try:
        blobs = {name: _encoded(name, content) for name, content in files.items()}
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
        for name, blob in blobs.items():
            with open(tmp / name, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".old-{final.name}-"))
            final.rename(old / final.name)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(final)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        cause = reason(err) if isinstance(err, OSError) else (str(err).strip().splitlines() or [""])[0][:200]
        size = f"; it needs {sum(map(len, blobs.values())):,} bytes" if len(blobs) == len(files) else ""
        raise CacheError(
            f"cannot write the cache entry {final} ({cause or type(err).__name__}){size}; "
            "free some space or point $VAE_TUT_CACHE elsewhere"
        ) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- keys


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _canonical(node: object) -> str:
    """A text form of a syntax tree that is the same on Python 3.10 to 3.13.

    ``ast.dump`` is not: 3.12 added ``type_params`` to functions and classes and
    3.13 leaves empty fields out. Here every empty field (``None``, ``[]``) is left
    out, as are ``type_comment`` and a constant's ``kind`` (the ``u`` prefix). 3.12 alone
    ends a nested format spec (``f"{a:>{w}}"``) with an empty string constant: empty
    strings are left out of an f-string's parts (no other version writes one there).
    """
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
    """Hash of Python sources by their syntax trees: comments, docstrings, layout and the
    Python version (3.10-3.13) do not count (:func:`_canonical`)."""
    digest = hashlib.sha256()
    for source in sources:
        tree = _without_docstrings(ast.parse(textwrap.dedent(source)))
        digest.update(_canonical(tree).encode())
    return digest.hexdigest()[:16]


def code_version(objects: Iterable[Any]) -> str:
    """:func:`source_digest` of the source of modules, classes and functions, as they are on
    disk now: call it once, when the objects are imported, so that it describes the code that runs."""
    sources = [inspect.getsource(obj) for obj in objects]
    return source_digest(sources)


def key_digest(key: dict[str, Any]) -> str:
    """A short hash of a JSON-able key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def checksum(fields: dict[str, Any], blob: bytes = b"") -> str:
    """SHA-256 of ``blob`` followed by ``fields`` as sorted JSON: what an entry's ``checksum`` holds,
    so that an entry edited or damaged after it was written is caught when it is read."""
    digest = hashlib.sha256(blob)
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of the weights ``model`` holds now (names, types, shapes and values): the key of what
    is computed from a model, so that weights changed in place are never served old results."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{list(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_weights(model: torch.nn.Module, blob: bytes, what: str, advice: str) -> torch.nn.Module:
    """``model`` with the state dict saved in ``blob`` loaded weights-only (no code is unpickled);
    bytes that are no state dict, or one of another shape, are a one-line :class:`CacheError` naming ``what``."""
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
    """The bytes of ``path`` if it is a regular file (not a link, FIFO or device) of at most
    ``max_bytes``; reads no more than that, so an endless or huge file cannot exhaust memory.
    Else :class:`CacheError` naming the file (an :class:`OSError` if it cannot be opened)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CacheError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise CacheError(f"{path} is {info.st_size:,} bytes, more than the {max_bytes:,} it may have")
        blob = handle.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise CacheError(f"{path} grew beyond {max_bytes:,} bytes while it was read")
    return blob


MAX_ENTRY_BYTES = 1 << 30  # no cache file of the book comes near 1 GiB


def read_entry(
    entry: Path, blob_name: str, fields: Iterable[str], what: str, advice: str, meta_name: str = "result.json"
) -> tuple[dict, bytes]:
    """The metadata (the JSON file ``meta_name``) and the file ``blob_name`` of a cache entry,
    after checking that ``fields`` are there and match the entry's :func:`checksum` with the file;
    anything off is a one-line :class:`CacheError` that names ``what`` and the folder and ends in ``advice``."""
    fields = tuple(fields)
    try:
        meta = json.loads(read_regular(entry / meta_name, MAX_ENTRY_BYTES))
        blob = read_regular(entry / blob_name, MAX_ENTRY_BYTES)
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: JSON nested too deep
        raise CacheError(f"{what} {entry} is unreadable ({type(err).__name__}); {advice}") from None
    except CacheError as err:
        raise CacheError(f"{what} {entry} is unreadable ({err}); {advice}") from None
    if not isinstance(meta, dict) or any(k not in meta for k in (*fields, "checksum")):
        raise CacheError(f"{what} {entry}: {meta_name} lacks {', '.join(fields)}; {advice}")
    if meta["checksum"] != checksum({k: meta[k] for k in fields}, blob):
        raise CacheError(
            f"{what} {entry}: {blob_name} or {meta_name} does not match its checksum "
            f"(changed or corrupted after it was written); {advice}"
        )
    return meta, blob


# ---------------------------------------------------------------- the entry point

LOCK_TIMEOUT = 2 * 3600.0  # seconds to wait for another process's lock: longer than any one training run
LOCK_NOTE_AFTER = 2.0  # seconds of waiting before saying so on stderr


def _cache_write_error(path: Path, err: OSError) -> CacheError:
    return CacheError(
        f"cannot write the lock file {path} ({reason(err)}); "
        "make the cache folder writable or point $VAE_TUT_CACHE elsewhere"
    )


def _lock(path: Path, timeout: float | None = None) -> Any:
    """Hold the lock file ``path``: at once if it is free, else after a line on stderr saying whose
    turn it is; a :class:`CacheError` naming the file if it cannot be created or stays held ``timeout`` s."""
    from filelock import FileLock, Timeout

    timeout = LOCK_TIMEOUT if timeout is None else finite(timeout, "lock timeout", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # create the file first: filelock takes "cannot create" in an existing folder for a
        # race with another process and retries for ever (e.g. in /proc, which refuses new files)
        if path.is_symlink():
            raise CacheError(
                f"{path} is a symbolic link ({os.readlink(path)}); delete it (a lock file is a plain file)"
            )
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666))
        except PermissionError:
            if not path.exists():  # an existing lock file of another user is still lockable
                raise
        if not path.is_file():
            raise CacheError(f"{path} is not a regular file; delete it (a lock file is a plain file)")
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=min(LOCK_NOTE_AFTER, timeout))
        except Timeout:
            if timeout <= LOCK_NOTE_AFTER:
                raise
            note(f"waiting for {path} (held by another process)")
            lock.acquire(timeout=timeout - LOCK_NOTE_AFTER)
    except Timeout:
        raise CacheError(
            f"{path} is still held by another process after {timeout:g} s; "
            "if no other vae_tut process runs, delete the lock file"
        ) from None
    except OSError as err:
        raise _cache_write_error(path, err) from None
    return lock


def cached(
    folder: Path,
    compute: Callable[[Path], tuple[T, dict[str, Any]]],
    load: Callable[[Path], T],
    *,
    refresh: bool = False,
    timeout: float | None = None,
) -> tuple[T, bool]:
    """The value stored in ``folder``, or compute it, store it and return it; plus whether it was stored.

    ``compute(scratch)`` returns ``(value, files)``: the value to hand back and
    the files of the entry (see :func:`write_atomic_dir`). ``scratch`` is a folder
    that survives an interruption (for resume checkpoints) and is removed once
    the entry is written. ``load(folder)`` reads a finished entry and raises
    :class:`CacheError` for a damaged one. A missing entry of the runs root is first
    fetched from the published runs when a URL is set (:func:`vae_tut.remote.fetch`); one
    that fails its ``load`` is one line, deleted and computed. With ``refresh=True`` an
    existing entry is computed again and nothing is fetched. The work runs under a lock
    file beside the entry, so a second process asking for the same entry waits (at most
    ``timeout`` seconds, default :data:`LOCK_TIMEOUT`) and then reads what the first one
    wrote. An entry that fails to load without the lock is read once more under it
    before the error is believed: another process may have been replacing it.
    """
    folder = Path(folder)
    if not refresh:
        try:
            if folder.is_dir():
                return load(folder), True
        except (CacheError, OSError):
            pass  # maybe being replaced right now: look again under the lock
    lock = _lock(folder.with_name(f".{folder.name}.lock"), timeout)
    try:
        if folder.is_dir() and not refresh:
            try:
                return load(folder), True
            except OSError as err:
                raise CacheError(f"cache entry {folder} is unreadable ({reason(err)}); delete it") from None
        if not refresh and _fetched(folder):
            try:
                return load(folder), True
            except (CacheError, OSError) as err:
                # the loader's advice ("delete it ...") is what happens here: leave it out
                detail = str(err).rsplit("; ", 1)[0] if isinstance(err, CacheError) else f"{folder}: {reason(err)}"
                note(f"note: a fetched entry failed its check ({detail}); computing it here instead")
                shutil.rmtree(folder, ignore_errors=True)
                from . import remote

                remote.take_fetched(folder)
        scratch = folder.with_name(f".partial-{folder.name}")
        if refresh:
            shutil.rmtree(scratch, ignore_errors=True)
        value, files = compute(scratch)
        write_atomic_dir(folder, files)
        shutil.rmtree(scratch, ignore_errors=True)
        return value, False
    finally:
        lock.release()


def _fetched(folder: Path) -> bool:
    """Whether :func:`vae_tut.remote.fetch` brought ``folder`` from the published runs (an entry
    of the runs root only; chapter 2 and the README's "published runs")."""
    try:
        runs = root("runs")
    except CacheError:
        return False
    if runs not in folder.parents:
        return False
    from . import remote

    return remote.fetch(folder, runs)


def note(message: str) -> None:
    """One line for the reader on stderr (e.g. that a cached run was made under another torch)."""
    print(message, file=sys.stderr, flush=True)
