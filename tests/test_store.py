"""The store: roots, the atomic writer, the lock, and the parallel grid that relies on them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vae_tut import store
from vae_tut.errors import CacheError, ConfigError, DataError
from vae_tut.experiments import RunConfig, cache_dir
from vae_tut.parallel import run_tasks, training_task

ROOT = Path(__file__).resolve().parent.parent


def test_roots_from_variables_and_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path / "data"))
    assert store.root("runs") == tmp_path / "runs" and store.root("data") == tmp_path / "data"
    assert store.root("runs", tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("VAE_TUT_CACHE")
    monkeypatch.delenv("VAE_TUT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.root("runs") == tmp_path / "xdg" / "vae_tut" / "runs"
    assert store.root("data") == tmp_path / "xdg" / "vae_tut" / "data"


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "file"))
    with pytest.raises(CacheError, match="is a file, not a folder"):
        store.root("runs")
    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path / "file"))
    with pytest.raises(DataError, match="is a file, not a folder"):
        store.root("data")


def test_cached_computes_once_and_reads_back(tmp_path):
    calls = []

    def compute(scratch):
        calls.append(scratch)
        return {"value": 1}, {"result.json": {"value": 1}}

    def load(folder):
        return json.loads((folder / "result.json").read_text())

    assert store.cached(tmp_path / "entry", compute, load) == ({"value": 1}, False)
    assert store.cached(tmp_path / "entry", compute, load) == ({"value": 1}, True)
    assert len(calls) == 1 and not calls[0].exists()
    assert store.cached(tmp_path / "entry", compute, load, refresh=True)[1] is False
    assert len(calls) == 2


def test_read_entry_checks_fields_and_checksum(tmp_path):
    """Every cache entry (run, classifier, exported decoder) is read back by store.read_entry: the
    checksum covers the named fields and the file, and each fault is one line naming the folder."""
    meta = {"accuracy": 0.5, "note": "not checked"}
    blob = b"weights"
    entry = tmp_path / "entry"
    store.write_atomic_dir(entry, {"model.pt": blob, "result.json": {**meta, "checksum": store.checksum(
        {"accuracy": 0.5}, blob)}})
    read = lambda: store.read_entry(entry, "model.pt", ["accuracy"], "test entry", "delete it")  # noqa: E731
    assert read() == ({**meta, "checksum": store.checksum({"accuracy": 0.5}, blob)}, blob)
    assert store.checksum({"a": 1}, b"x") != store.checksum({"a": 1}, b"y") != store.checksum({"a": 2}, b"y")
    saved = json.loads((entry / "result.json").read_text())
    (entry / "result.json").write_text(json.dumps({**saved, "note": "edited"}))
    assert read()[0]["note"] == "edited"  # a field outside the checksum may change
    faults = {
        "checksum": lambda: (entry / "model.pt").write_bytes(b"weightz"),
        "lacks accuracy": lambda: (entry / "result.json").write_text(json.dumps({"checksum": "0"})),
        "is unreadable (JSONDecodeError)": lambda: (entry / "result.json").write_text("{"),
        "is unreadable (FileNotFoundError)": lambda: ((entry / "result.json").write_text(json.dumps(saved)),
                                                      (entry / "model.pt").unlink()),
    }
    for match, damage in faults.items():
        damage()
        with pytest.raises(CacheError, match=re.escape(match)) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"test entry {entry}") and message.endswith("; delete it")
        assert "\n" not in message


TORCH_DISK_FULL = ("[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0\n"
                   + "\n".join(f"frame #{i}: c10::Error::Error(...) + 0x{i:x}" for i in range(40)))


@pytest.mark.parametrize("fault", ["torch.save", "write"])
def test_a_full_disk_is_one_line_and_keeps_the_old_entry(tmp_path, monkeypatch, fault):
    """torch.save reports a full disk as a 43-line RuntimeError, a plain write as ENOSPC: either
    is one line naming the entry (and the bytes it needs, when they are known); the old entry stays."""
    import errno

    entry = tmp_path / "entry"
    store.write_atomic_dir(entry, {"model.pt": b"old weights", "result.json": {"v": 1}})
    meta = {"v": 2}
    advice = "free some space or point $VAE_TUT_CACHE elsewhere"
    if fault == "torch.save":
        def full(obj, f):
            raise RuntimeError(TORCH_DISK_FULL)

        monkeypatch.setattr(store.torch, "save", full)
        files = {"model.pt": {"w": b"x" * 1000}, "result.json": meta}
        cause = "[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0"
        expected = f"cannot write the cache entry {entry} ({cause}); {advice}"
    else:
        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store.os, "fsync", full)
        files = {"model.pt": b"x" * 1000, "result.json": meta}
        size = 1000 + len(json.dumps(meta, indent=1, sort_keys=True))
        expected = f"cannot write the cache entry {entry} (No space left on device); it needs {size:,} bytes; {advice}"
    with pytest.raises(CacheError) as caught:
        store.cached(entry, lambda s: (2, files), lambda f: 1, refresh=True)
    assert str(caught.value) == expected
    assert (entry / "model.pt").read_bytes() == b"old weights"
    assert json.loads((entry / "result.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".entry.lock", "entry"]  # no half-written folder left


def test_read_regular_refuses_fifos_links_and_endless_files(tmp_path):
    """A cache file that is a FIFO, a link (e.g. to /dev/zero) or larger than its cap is refused
    before it is read: nothing hangs and nothing is read whole."""
    (tmp_path / "ok").write_bytes(b"12345")
    assert store.read_regular(tmp_path / "ok", 5) == b"12345"
    with pytest.raises(CacheError, match=r"ok is 5 bytes, more than the 4 it may have"):
        store.read_regular(tmp_path / "ok", 4)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(CacheError, match=r"fifo is not a regular file"):
        store.read_regular(tmp_path / "fifo", 10)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(OSError):  # O_NOFOLLOW: a link is not opened
        store.read_regular(tmp_path / "zero", 10)
    # a file longer than its size said when opened (one still being written; /proc reports size 0)
    with pytest.raises(CacheError, match=r"^/proc/self/status grew beyond 10 bytes while it was read$"):
        store.read_regular(Path("/proc/self/status"), 10)


def test_a_lock_that_is_a_dangling_link_writes_nothing_outside_the_cache(tmp_path):
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    link = tmp_path / "cache" / ".entry.lock"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(CacheError, match=r"\.entry\.lock is a symbolic link .*; delete it"):
        store.cached(tmp_path / "cache" / "entry", lambda s: (1, {"a.json": 1}), lambda f: 1)
    assert not target.exists()


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    import filelock

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    with pytest.raises(CacheError, match=r"cannot write the lock file .*\.entry\.lock"):
        store.cached(tmp_path / "entry", lambda s: (1, {}), lambda f: 1)


def test_a_lock_released_while_waiting_is_taken(tmp_path, monkeypatch, capsys):
    import fcntl
    import threading

    monkeypatch.setattr(store, "LOCK_NOTE_AFTER", 0.1)
    holder = open(tmp_path / ".entry.lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    threading.Timer(0.5, holder.close).start()  # the other process finishes
    value = store.cached(tmp_path / "entry", lambda s: (7, {"result.json": 7}),
                         lambda f: json.loads((f / "result.json").read_text()), timeout=30)
    assert value == (7, False)
    assert capsys.readouterr().err.strip() == f"waiting for {tmp_path / '.entry.lock'} (held by another process)"


def test_an_entry_replaced_while_read_is_read_again_under_the_lock(tmp_path):
    """A reader that finds the entry half-replaced (--retrain in another process) waits for the
    lock and reads the new entry, instead of calling it unreadable."""
    store.write_atomic_dir(tmp_path / "entry", {"result.json": 1})
    reads = []

    def load(folder):
        reads.append(folder)
        if len(reads) == 1:  # the moment between moving the old entry away and renaming the new one in
            raise CacheError(f"cache entry {folder} is unreadable")
        return json.loads((folder / "result.json").read_text())

    assert store.cached(tmp_path / "entry", lambda s: (2, {}), load) == (1, True)
    assert len(reads) == 2
    # an entry that stays broken under the lock is reported, not computed over
    with pytest.raises(CacheError, match="unreadable"):
        store.cached(tmp_path / "entry", lambda s: (2, {}),
                     lambda f: (_ for _ in ()).throw(CacheError(f"cache entry {f} is unreadable")))


def test_two_processes_training_one_config_both_succeed(real_data, tmp_path):
    env = {**os.environ, "VAE_TUT_CACHE": str(tmp_path / "runs"), "VAE_TUT_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vae_tut", "train", "--quick", "--epochs", "1", "--json"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r["cached"] for r in results) == [False, True]  # trained once, read once
    assert results[0]["train"] == results[1]["train"]
    entries = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith((".tmp-", ".partial-"))]


def test_jobs_must_be_positive():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match="jobs must be a whole number"):
            run_tasks([], bad)


def test_grid_in_two_workers(real_data, monkeypatch):
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    configs = [RunConfig(epochs=1).resolved(), RunConfig(epochs=1, seed=1).resolved()]
    lines = []
    run_tasks([training_task(f"run{i}", c) for i, c in enumerate(configs)], 2, say=lines.append, interval=0)
    for config in configs:
        assert (cache_dir() / config.key() / "result.json").exists()
    assert sum(line.startswith("[") and ": done in" in line for line in lines) == 2
    assert any(line.startswith("[1/2] run0: epoch 1/1,") and "s/epoch" in line and "ETA" in line
               for line in lines), lines
