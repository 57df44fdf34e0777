"""Where vae_tut keeps things on disk, and the one way it writes there (chapter 2 introduces the cache).

Two roots, one rule: ``$VAE_TUT_DATA`` or ``$VAE_TUT_CACHE`` when set, else a
folder in the user's cache directory (``platformdirs``; ``~/.cache/vae_tut`` on
Linux). :func:`cached` is the single entry point for every result that is
expensive to recompute (trained runs, likelihood estimates): an entry is a
folder named by a hash of a key, filled in a temporary folder and renamed into
place, computed under a file lock so that two processes asking for the same
entry at once compute it once and both read the same result.

The key of an entry includes :func:`code_version` of the functions that compute
it: a hash of their syntax trees without docstrings, so rewording a docstring or
a comment keeps every entry while any change to the code makes a new one.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import torch

from .errors import CacheError, DataError

T = TypeVar("T")
ROOTS = {"data": "VAE_TUT_DATA", "runs": "VAE_TUT_CACHE"}


def root(kind: str, override: str | os.PathLike | None = None) -> Path:
    """The folder for ``kind`` (``data`` or ``runs``): ``override``, else its variable, else the user cache."""
    if kind not in ROOTS:
        raise ValueError(f"unknown root {kind!r}")
    if override is not None:
        path = Path(override).expanduser()
    elif os.environ.get(ROOTS[kind]):
        path = Path(os.environ[ROOTS[kind]]).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("vae_tut", appauthor=False)) / kind
    if path.exists() and not path.is_dir():
        error = DataError if kind == "data" else CacheError
        raise error(f"{path} is a file, not a folder; point ${ROOTS[kind]} at a folder")
    return path


# ---------------------------------------------------------------- writing

def write_atomic_dir(final: Path, files: dict[str, Any]) -> None:
    """Write ``files`` as the folder ``final``: name -> bytes, a JSON-able value (``*.json``) or a torch object.

    The files are written and synced in a fresh temporary folder beside ``final``,
    which is then renamed into place: a reader sees the whole entry or none.
    An existing ``final`` is replaced.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        for name, content in files.items():
            with open(tmp / name, "wb") as handle:
                if isinstance(content, bytes):
                    handle.write(content)
                elif name.endswith(".json"):
                    handle.write(json.dumps(content, indent=1, sort_keys=True).encode())
                else:
                    torch.save(content, handle)
                handle.flush()
                os.fsync(handle.fileno())
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".old-{final.name}-"))
            final.rename(old / final.name)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- keys

def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _canonical(node: object) -> str:
    """A text form of a syntax tree that is the same on Python 3.10 to 3.13.

    ``ast.dump`` is not: 3.12 added ``type_params`` to functions and classes and
    3.13 leaves empty fields out. Here every empty field (``None``, ``[]``) is left
    out, as are ``type_comment`` and a constant's ``kind`` (the ``u`` prefix).
    """
    if isinstance(node, ast.AST):
        parts = [type(node).__name__]
        for name in node._fields:
            value = getattr(node, name, None)
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


def code_version(objects: Iterable[object]) -> str:
    """:func:`source_digest` of the source of modules, classes and functions, as they are on
    disk now: call it once, when the objects are imported, so that it describes the code that runs."""
    sources = [inspect.getsource(obj) for obj in objects]
    return source_digest(sources)


def key_digest(key: dict[str, Any]) -> str:
    """A short hash of a JSON-able key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the entry point

def _lock(path: Path):
    from filelock import FileLock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        lock.acquire()
    except OSError as err:
        raise CacheError(f"cannot write to the cache folder {path.parent} ({err.strerror or err}); "
                         "make it writable or point $VAE_TUT_CACHE elsewhere") from None
    return lock


def cached(folder: Path, compute: Callable[[Path], tuple[T, dict[str, Any]]],
           load: Callable[[Path], T], *, refresh: bool = False) -> tuple[T, bool]:
    """The value stored in ``folder``, or compute it, store it and return it; plus whether it was stored.

    ``compute(scratch)`` returns ``(value, files)``: the value to hand back and
    the files of the entry (see :func:`write_atomic_dir`). ``scratch`` is a folder
    that survives an interruption (for resume checkpoints) and is removed once
    the entry is written. ``load(folder)`` reads a finished entry. With
    ``refresh=True`` an existing entry is computed again. The work runs under a
    lock file beside the entry, so a second process asking for the same entry
    waits and then reads what the first one wrote.
    """
    folder = Path(folder)
    if folder.is_dir() and not refresh:
        return load(folder), True
    lock = _lock(folder.with_name(f".{folder.name}.lock"))
    try:
        if folder.is_dir() and not refresh:
            return load(folder), True
        scratch = folder.with_name(f".partial-{folder.name}")
        if refresh:
            shutil.rmtree(scratch, ignore_errors=True)
        value, files = compute(scratch)
        write_atomic_dir(folder, files)
        shutil.rmtree(scratch, ignore_errors=True)
        return value, False
    finally:
        lock.release()


def note(message: str) -> None:
    """One line for the reader on stderr (e.g. that a cached run was made under another torch)."""
    print(message, file=sys.stderr, flush=True)
