"""Published runs (vae_tut/remote.py): fetched by key from a real local HTTP server, and every
failure one line on stderr followed by training here."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import socket
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from vae_tut import remote, train
from vae_tut.cli import main
from vae_tut.errors import CacheError
from vae_tut.experiments import RunConfig, cache_dir, run

CONFIG = RunConfig()  # the report's MLP; quick mode and the tiny data make it a 1-second run


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch):
    """Each test starts as a new process would: no index read, no line said; requests never go to a proxy."""
    remote.reset()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield
    remote.reset()


class _Handler(SimpleHTTPRequestHandler):
    """Serves the site folder; logs each path asked for; waits ``server.delay`` seconds first."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.server.delay:  # type: ignore[attr-defined]
            self.server.release.wait(self.server.delay)  # type: ignore[attr-defined]
        super().do_GET()


class _Server(ThreadingHTTPServer):
    """A client that stops reading at its size cap closes the connection mid-file: not an error here
    (socketserver would print its traceback on stderr, which the tests read, at a time that varies)."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def published(tiny_data, tmp_path, monkeypatch):
    """One quick MLP run trained into cache A and published to ``site/runs``; then cache B (empty) is
    the run cache, and ``site`` is served on 127.0.0.1 (``url`` is its ``runs/``)."""
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "cache-a"))
    trained = run(CONFIG)
    assert trained.origin == "trained"
    site = tmp_path / "site"
    assert remote.publish(site / "runs") == 1
    monkeypatch.setenv("VAE_TUT_CACHE", str(tmp_path / "cache-b"))
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(site)))
    server.requests, server.delay, server.release = [], 0.0, threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/runs/"
    monkeypatch.setenv("VAE_TUT_RUNS_URL", url)
    entry = site / "runs" / trained.config.key()
    yield SimpleNamespace(run=trained, site=site, runs=site / "runs", entry=entry, url=url, server=server)
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(5)


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the run was published")


def test_a_published_run_is_fetched_not_trained(published, monkeypatch, capsys):
    monkeypatch.setattr(train, "fit", _no_training)
    fetched = run(CONFIG)
    assert fetched.origin == "fetched" and fetched.from_cache
    assert fetched.checksum == published.run.checksum and fetched.test == published.run.test
    assert capsys.readouterr().err == ""
    entry = cache_dir() / fetched.config.key()
    assert sorted(p.name for p in entry.iterdir()) == ["model.pt", "origin.json", "result.json"]
    assert json.loads((entry / "origin.json").read_text()) == {"origin": "fetched", "from": published.url}
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".tmp-")]
    again = run(CONFIG)
    assert again.origin == "cached" and again.checksum == published.run.checksum
    assert remote.origin_counts() == {"fetched": 1, "trained": 0}
    assert published.server.requests.count("/runs/index.json") == 1


def _falls_back(capsys, *expected: str, what: str = "training here instead") -> None:
    """The run is trained here, after exactly one line on stderr holding ``expected``."""
    trained = run(CONFIG)
    assert trained.origin == "trained" and not trained.from_cache
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("note: ") and what in err, err
    for part in expected:
        assert part in err, err
    assert not [p for p in cache_dir().iterdir() if p.name.startswith(".tmp-")]
    assert not remote.was_fetched(cache_dir() / trained.config.key())


def _edit_index(runs: Path, change) -> None:
    index = json.loads((runs / "index.json").read_text())
    change(index)
    (runs / "index.json").write_text(json.dumps(index))


def _rehash(runs: Path, entry: Path, name: str) -> None:
    """Make the index agree with the file ``name`` of ``entry`` as it is now."""
    blob = (entry / name).read_bytes()
    info = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    _edit_index(runs, lambda index: index["entries"][entry.name]["files"].__setitem__(name, info))


def test_connection_refused(published, monkeypatch, capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("VAE_TUT_RUNS_URL", f"http://127.0.0.1:{port}/runs/")
    _falls_back(capsys, f"127.0.0.1:{port}/runs/", "index.json: cannot connect (Connection refused)")


def test_timeout(published, monkeypatch, capsys):
    monkeypatch.setattr(remote, "TIMEOUT", 0.3)
    published.server.delay = 3.0
    _falls_back(capsys, "index.json: no answer within 0.3 s")


def test_index_404(published, capsys):
    (published.runs / "index.json").unlink()
    _falls_back(capsys, "index.json: HTTP 404")


def test_file_404(published, capsys):
    (published.entry / "model.pt").unlink()
    _falls_back(capsys, f"{published.entry.name}/model.pt: HTTP 404")


def test_index_not_json(published, capsys):
    (published.runs / "index.json").write_text("<html>not an index</html>")
    _falls_back(capsys, "index.json is not JSON")


@pytest.mark.parametrize("index", [[], {"format": 2, "entries": {}}, {"format": 1, "entries": []}])
def test_index_of_the_wrong_shape(published, capsys, index):
    (published.runs / "index.json").write_text(json.dumps(index))
    _falls_back(capsys, "index.json is not an index of published runs (format 1)")


def test_index_without_the_key(published, capsys):
    _edit_index(published.runs, lambda index: index["entries"].clear())
    _falls_back(capsys, f"it has no entry {published.entry.name}")


@pytest.mark.parametrize(
    "files",
    [{}, {"../x": {"sha256": "0" * 64, "size": 1}}, {"model.pt": {"sha256": "xyz", "size": 1}},
     {"model.pt": {"sha256": "0" * 64, "size": -1}}, {"origin.json": {"sha256": "0" * 64, "size": 1}}],
    ids=["none", "path", "hash", "size", "origin"])
def test_entry_of_the_wrong_shape(published, capsys, files):
    _edit_index(published.runs, lambda index: index["entries"][published.entry.name].__setitem__("files", files))
    _falls_back(capsys, f"the entry {published.entry.name}")
    assert not [r for r in published.server.requests if r != "/runs/index.json"]  # nothing downloaded


def test_wrong_hash(published, capsys):
    model = published.entry / "model.pt"
    blob = bytearray(model.read_bytes())
    blob[-1] ^= 0xFF
    model.write_bytes(bytes(blob))
    _falls_back(capsys, "model.pt does not match its SHA-256 in index.json")


def test_truncated_file(published, capsys):
    model = published.entry / "model.pt"
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[: size // 2])
    _falls_back(capsys, f"model.pt came as {size // 2:,} bytes, not the {size:,} of index.json (truncated)")


def test_file_longer_than_the_index_says(published, capsys):
    model = published.entry / "model.pt"
    size = model.stat().st_size
    model.write_bytes(model.read_bytes() + b"\0" * 100_000)
    _falls_back(capsys, f"model.pt is more than {size:,} bytes")


def test_file_over_the_cap_is_not_downloaded(published, monkeypatch, capsys):
    monkeypatch.setattr(remote, "MAX_FILE_BYTES", 100)
    _falls_back(capsys, "model.pt is", "more than the 100 a file may have")
    assert published.server.requests == ["/runs/index.json"]


def test_entry_that_fails_its_own_check_is_deleted_and_trained(published, capsys):
    """Hashes as published, but result.json changed after its checksum: the loader refuses it."""
    meta = json.loads((published.entry / "result.json").read_text())
    meta["seconds"] += 1
    (published.entry / "result.json").write_text(json.dumps(meta))
    _rehash(published.runs, published.entry, "result.json")
    _falls_back(capsys, "a fetched entry failed its check", "does not match its checksum",
                what="computing it here instead")


def test_http_to_another_host_is_refused_without_connecting(published, monkeypatch, capsys):
    def no_connection(*args, **kwargs):
        raise AssertionError("connected")

    monkeypatch.setenv("VAE_TUT_RUNS_URL", "http://example.com/runs/")
    monkeypatch.setattr(socket.socket, "connect", no_connection)
    monkeypatch.setattr(socket, "create_connection", no_connection)
    _falls_back(capsys, "http://example.com/runs/ ($VAE_TUT_RUNS_URL) refused: only an https:// folder")


@pytest.mark.parametrize("url", ["ftp://example.com/runs/", "https:///runs/", "file:///tmp/runs/",
                                 "https://user:pw@example.com/runs/"])
def test_other_urls_are_refused(monkeypatch, capsys, url):
    monkeypatch.setenv("VAE_TUT_RUNS_URL", url)
    assert remote.runs_url() is None and remote.runs_url() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err, err  # said once per process


def test_retrain_and_an_empty_url_never_fetch(published, monkeypatch, capsys):
    assert run(CONFIG, retrain=True).origin == "trained"
    monkeypatch.setenv("VAE_TUT_RUNS_URL", "")
    shutil.rmtree(cache_dir())
    assert run(CONFIG).origin == "trained"
    assert published.server.requests == [] and capsys.readouterr().err == ""


def test_the_package_setting_is_the_default(published, monkeypatch, tmp_path):
    setting = tmp_path / "published.json"
    monkeypatch.setattr(remote, "SETTING", setting)
    monkeypatch.delenv("VAE_TUT_RUNS_URL")
    assert remote.runs_url() is None  # no file: nothing fetched
    setting.write_text(json.dumps({"runs_url": ""}))
    assert remote.runs_url() is None
    setting.write_text(json.dumps({"runs_url": published.url.rstrip("/")}))
    assert remote.runs_url() == published.url
    monkeypatch.setattr(train, "fit", _no_training)
    assert run(CONFIG).origin == "fetched"


def test_the_shipped_setting_is_empty_or_a_pages_url():
    url = json.loads(remote.SETTING.read_text())["runs_url"]
    assert url == "" or (url.startswith("https://") and url.endswith("/runs/"))


def test_likelihood_estimates_are_published_and_fetched(published, monkeypatch, capsys, tiny_data):
    from vae_tut import likelihood

    images = tiny_data.expected["test"][0][:8]
    monkeypatch.setenv("VAE_TUT_CACHE", str(published.site.parent / "cache-a"))
    with monkeypatch.context() as publisher:
        publisher.setenv("VAE_TUT_RUNS_URL", "")
        first = likelihood.evaluate_run(published.run, images, ks=(1, 4))
    assert not first.cached
    assert remote.publish(published.runs) == 2
    monkeypatch.setenv("VAE_TUT_CACHE", str(published.site.parent / "cache-b"))
    monkeypatch.setattr(train, "fit", _no_training)
    monkeypatch.setattr(likelihood, "log_importance_weights_at", _no_training)
    fetched = run(CONFIG)
    estimates = likelihood.evaluate_run(fetched, images, ks=(1, 4))
    assert estimates.cached and estimates.numbers() == first.numbers()
    assert capsys.readouterr().err == ""


def test_publish_leaves_out_what_is_not_a_finished_entry(published, monkeypatch, capsys, tmp_path):
    source = published.site.parent / "cache-a"
    entry = source / published.run.config.key()
    for name in (".partial-x", ".tmp-x", ".old-x", "web/decoder", "classifier/x", "likelihood/.tmp-y"):
        (source / name).mkdir(parents=True)
        (source / name / "result.json").write_text("{}")
    (source / ".x.lock").write_text("")
    shutil.copytree(entry, source / "mlp-vae-mnist-z2-damaged")
    (source / "mlp-vae-mnist-z2-damaged" / "model.pt").write_bytes(b"damaged")
    capsys.readouterr()
    assert remote.publish(tmp_path / "out", cache=source) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "left out 1 cache entries" in err and "mlp-vae-mnist-z2-damaged" in err, err
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["format"] == 1 and list(index["entries"]) == [entry.name]
    assert set(index["entries"][entry.name]["files"]) == {"model.pt", "result.json"}
    assert {p.name for p in (tmp_path / "out").iterdir()} == {entry.name, "index.json"}
    monkeypatch.setattr(remote, "MAX_FILE_BYTES", 1000)  # weights a reader's fetch would refuse are not published
    assert remote.publish(tmp_path / "small", cache=source) == 0
    assert "model.pt is" in capsys.readouterr().err


def test_publish_command_is_one_line(published, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("VAE_TUT_CACHE", str(published.site.parent / "cache-a"))
    assert main(["publish", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("published 1 entries (") and str(tmp_path / "out") in out
    assert main(["publish", str(tmp_path / "out")]) == 0  # replaces an earlier publication
    capsys.readouterr()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["publish", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files but no index.json" in err, err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_reproduce_counts_what_it_trained_fetched_and_read(published, monkeypatch, capsys, tmp_path):
    from vae_tut.experiments import AE_BASELINE

    with monkeypatch.context() as publisher:
        publisher.setenv("VAE_TUT_CACHE", str(published.site.parent / "cache-a"))
        publisher.setenv("VAE_TUT_RUNS_URL", "")
        run(AE_BASELINE)
        assert remote.publish(published.runs) == 2
    argv = ["reproduce", "--only", "ae", "--quick", "--jobs", "1", "--out", str(tmp_path / "r.md")]
    with monkeypatch.context() as reader:
        reader.setattr(train, "fit", _no_training)
        assert main(argv) == 0
        assert "runs: 0 trained here, 1 fetched, 0 from the cache\n" in capsys.readouterr().out
        assert main(argv) == 0
        assert "runs: 0 trained here, 0 fetched, 1 from the cache\n" in capsys.readouterr().out
    assert main([*argv, "--retrain"]) == 0
    assert "runs: 1 trained here, 0 fetched, 0 from the cache\n" in capsys.readouterr().out
    assert remote.origin_counts() == {"fetched": 0, "trained": 1}
    assert published.server.requests.count("/runs/index.json") == 1  # once per process


def test_without_pooch_it_trains(published, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pooch", None)  # an environment made before pooch was a dependency
    _falls_back(capsys, "it needs PyPI pooch (pooch is missing; pip install -e .)")


def test_publish_refuses_a_folder_it_would_spoil(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases = {
        tmp_path / "a-file": "is not a folder; name a new folder to publish the runs to",
        tmp_path / "busy": "holds files but no index.json (not published runs); name a new or empty folder",
        cache_dir() / "site": f"overlaps the run cache {cache_dir()}; name a folder outside it",
    }
    for dest, message in cases.items():
        with pytest.raises(CacheError, match=f"^{re.escape(f'{dest} {message}')}$"):
            remote.publish(dest)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"] and not (cache_dir() / "site").exists()
