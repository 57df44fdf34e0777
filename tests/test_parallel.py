"""The parallel grid (vae_tut.parallel, vae_tut.pool) with fake tasks, its time estimates
(vae_tut.estimate, read back by benchmarks/report.py), and the book build's extension that trains
the missing grid first (_ext/train_grid.py). No training here, but for `reproduce` started and
killed on tiny synthetic data (workers must die with it)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.report import forecasts
from vae_tut import parallel
from vae_tut.errors import ConfigError
from vae_tut.estimate import Progress
from vae_tut.experiments import RunConfig, cache_dir
from vae_tut.parallel import Task, missing_tasks, run_tasks

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- fake tasks (top level: workers import them)

def write_file(path: str, text: str) -> None:
    Path(path).write_text(text)


def needs_file(path: str) -> None:
    if not Path(path).exists():
        raise AssertionError(f"{path} should have been written by an earlier task")


def epochs(n: int, on_epoch) -> None:
    for epoch in range(1, n + 1):
        on_epoch({"epoch": epoch, "seconds": 0.01 * epoch})


def sleep_long(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(300)


def fail_once_started(pid_file: str) -> None:
    deadline = time.monotonic() + 120
    while not Path(pid_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise ConfigError("boom: a one-line error")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# ---------------------------------------------------------------- the pool

def test_tasks_in_two_workers_report_and_wait_for_each_other(tmp_path):
    marker = str(tmp_path / "first.txt")
    tasks = [Task("first", "writes a file", write_file, (marker, "x"), flops=3e9),
             Task("second", "reads it", needs_file, (marker,), flops=2e9, after=("first",)),
             Task("train", "reports epochs", epochs, (3,), epochs=3, flops=1e9, family="mlp training")]
    lines: list[str] = []
    run_tasks(tasks, 2, say=lines.append, interval=0, default_rate=1e9)
    assert lines[0].startswith("grid: 3 tasks (") and "(estimate) [at " in lines[0]
    assert lines[-1].startswith("grid: done in")
    assert sum(line.startswith("[") and ": done in" in line for line in lines) == 3
    assert any(line.startswith("[3/3] train: epoch 3/3, 0.0 s/epoch, run ETA") and "grid ~" in line
               for line in lines), lines
    first_done = next(i for i, line in enumerate(lines) if line.startswith("[1/3] first: done"))
    assert next(i for i, line in enumerate(lines) if line.startswith("[2/3] second: reads it")) > first_done
    said, end = forecasts("\n".join(lines))
    assert said and end is not None and all(minute <= end + 1 for minute, _ in said)


def test_an_error_stops_the_other_workers_at_once(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    tasks = [Task("sleeper", "sleeps 5 minutes", sleep_long, (str(pid_file),), flops=1e12),
             Task("failer", "fails", fail_once_started, (str(pid_file),), flops=1e9)]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="boom") as caught:
        run_tasks(tasks, 2, say=lambda line: None, default_rate=1e9)
    elapsed = time.monotonic() - started
    assert elapsed < 90, elapsed  # two spawned workers start, one fails; nobody waits 300 s
    assert "fail_once_started" in str(caught.value.__cause__)  # the worker's traceback, kept as the cause
    pid = int(pid_file.read_text())
    assert not _alive(pid), "the sleeping worker was left running"


CTRL_C_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_parallel import sleep_long
from vae_tut.parallel import Task, run_tasks
try:
    run_tasks([Task("a", "sleeps", sleep_long, ({pid!r},)), Task("b", "sleeps", sleep_long, ({pid!r} + "2",))],
              2, default_rate=1e9)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def test_ctrl_c_stops_the_workers_without_their_tracebacks(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    script = CTRL_C_SCRIPT.format(tests=str(ROOT / "tests"), pid=str(pid_file))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _wait_for(pid_file)
        _wait_for(Path(str(pid_file) + "2"))
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the main process and its workers
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip() == "interrupted", err
    assert not _alive(int(pid_file.read_text()))


# ---------------------------------------------------------------- workers die with `reproduce`

# Run in every Python process of the subprocess (its workers too): registers the tiny synthetic
# data set as `mnist`, as the tiny_data fixture does in this process.
SITE = """
import os
if os.environ.get("VAE_TUT_TEST_MNIST_FILES"):
    import dataclasses, json
    from vae_tut import data
    files = tuple(data.RawFile(*f) for f in json.loads(os.environ["VAE_TUT_TEST_MNIST_FILES"]))
    data.DATASETS["mnist"] = dataclasses.replace(data.DATASETS["mnist"], files=files)
"""


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux: ``/proc/<pid>/task/*/children``)."""
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in path.read_text().split()]
        except OSError:  # the thread or the process ended meanwhile
            pass
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (dead, waiting for a parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _reproduce_with_running_workers(tmp_path: Path, tiny_data) -> tuple[subprocess.Popen, list[int], Path]:
    """``python -m vae_tut reproduce --only latent --jobs 2`` in quick mode on the tiny data, returned
    once its workers train (a first epoch was reported), with all its child processes (two workers and
    multiprocessing's resource tracker) and the file its stderr goes to."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    files = [[f.name, f.size, f.sha256] for f in tiny_data.info.files]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "VAE_TUT_QUICK": "1",
           "VAE_TUT_PROGRESS": "0", "OMP_NUM_THREADS": "1", "VAE_TUT_TEST_MNIST_FILES": json.dumps(files)}
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "vae_tut", "reproduce", "--only", "latent", "--jobs", "2",
                                 "--out", str(tmp_path / "table.md")], cwd=tmp_path, env=env,
                                stdout=stdout, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 240
    while ": epoch 1/1," not in out.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no worker trained (exit {proc.wait()}): {err.read_text()[-2000:]}")
        time.sleep(0.1)
    children = _children(proc.pid)
    assert sum("spawn_main" in _cmdline(child) for child in children) == 2, [_cmdline(c) for c in children]
    return proc, children, err


def _assert_all_end(proc: subprocess.Popen, children: list[int], seconds: float = 20) -> None:
    """Every one of ``children`` is gone within ``seconds``; any left is killed (and the test fails)."""
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in children if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after {seconds} s: {[_cmdline(pid) for pid in left]}"
    assert proc.poll() is not None


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds child processes in /proc")


@needs_proc
@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_kill_or_ctrl_c_stops_reproduce_and_its_workers_with_one_line(tmp_path, tiny_data, how):
    proc, children = None, []
    try:
        proc, children, err = _reproduce_with_running_workers(tmp_path, tiny_data)
        if how == "kill":
            proc.send_signal(signal.SIGTERM)  # `kill PID`: to the main process only, as a service manager does
        else:
            os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: to the main process and its workers
        assert proc.wait(timeout=60) == 130
        _assert_all_end(proc, children)
        lines = [line for line in err.read_text().splitlines() if line.strip()]
        assert len(lines) == 1 and "reproduce: interrupted" in lines[0], lines  # no leaked-semaphore warning
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@needs_proc
def test_workers_end_when_reproduce_is_killed_with_sigkill(tmp_path, tiny_data):
    proc, children = None, []
    try:
        proc, children, _ = _reproduce_with_running_workers(tmp_path, tiny_data)
        proc.send_signal(signal.SIGKILL)  # `kill -9` or the out-of-memory killer: no clean-up in the parent
        assert proc.wait(timeout=30) == -signal.SIGKILL
        _assert_all_end(proc, children)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file whose writes fail")
def test_reproduce_refuses_an_out_it_cannot_write_before_any_work(capsys, monkeypatch):
    """``--out /dev/full`` opens fine but takes no byte: one line naming it, before any task is looked at."""
    from vae_tut.cli import _write_out, main

    monkeypatch.setattr(parallel, "missing_tasks", lambda *a, **k: pytest.fail("no work should start"))
    assert main(["reproduce", "--quick", "--only", "ae", "--out", "/dev/full"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["python -m vae_tut reproduce: error: --out /dev/full cannot be written (No space left on device)"]
    with pytest.raises(ConfigError, match=r"^--out /dev/full cannot be written \(No space left on device\)$"):
        _write_out(Path("/dev/full"), "| table |")  # the table itself, after the work: named as well


def test_bad_task_lists():
    with pytest.raises(ConfigError, match="distinct names"):
        run_tasks([Task("a", "", print), Task("a", "", print)], 1)
    with pytest.raises(ConfigError, match="not given: b"):
        run_tasks([Task("a", "", print, after=("b",))], 1)
    lines: list[str] = []
    run_tasks([], 2, say=lines.append)
    assert lines == ["grid: nothing to compute, the cache holds it all"]


# ---------------------------------------------------------------- the time left

def _progress(tasks: list[Task], jobs: int = 1) -> tuple[Progress, list[str]]:
    lines: list[str] = []
    return Progress(tasks, jobs, lines.append, 0.0, default_rate=1e9), lines


def test_a_run_not_yet_seen_is_priced_by_its_own_flops():
    cnn = Task("cnn", "", print, epochs=10, flops=100e9, family="cnn training")
    mlp = Task("mlp", "", print, epochs=5, flops=10e9, family="mlp training")
    progress, lines = _progress([cnn, mlp])
    assert progress.left_s() == pytest.approx(110)  # the default rate, 1 GFLOP/s
    progress.started(cnn)
    progress.epoch("cnn", 1, 5.0)  # 10 GFLOP in 5 s: 2 GFLOP/s
    # the MLP at its FLOPs over the measured speed (5 s), not at 5 CNN epochs' time (25 s)
    assert progress.left_s() == pytest.approx(90e9 / 2e9 + 10e9 / 2e9)
    progress.epoch("cnn", 2, 7.0)  # the next epoch in 2 s: 10 GFLOP/s; over both, 20 GFLOP in 7 s
    assert progress.rate("cnn training") == pytest.approx(20e9 / 7)
    assert progress.rate("mlp training") == pytest.approx(20e9 / 7)
    progress.started(mlp)
    progress.epoch("mlp", 1, 0.5)  # 2 GFLOP in 0.5 s: the MLP's own speed from now on
    assert progress.rate("mlp training") == pytest.approx(4e9)
    assert progress.left_s() == pytest.approx(80e9 / (20e9 / 7) + 8e9 / 4e9)
    progress.done("cnn", 30.0)
    assert progress.left_s() == pytest.approx(2.0)
    assert lines[-1].startswith("[1/2] cnn: done in 0.5 min, grid ~0.0 min left [at ")


def test_the_work_is_shared_by_the_workers_but_one_task_cannot_be():
    long = Task("long", "", print, epochs=1, flops=100e9, family="cnn training")
    short = [Task(f"s{i}", "", print, flops=10e9, family="mlp likelihood") for i in range(4)]
    progress, _ = _progress([long, *short], jobs=2)
    assert progress.left_s() == pytest.approx(100)  # the longest task, not (100 + 40) / 2
    progress, _ = _progress([*short], jobs=2)
    assert progress.left_s() == pytest.approx(20)
    progress.begin()
    progress.started(short[0])
    progress.begun["s0"] -= 4.0  # running for 4 s: 6 s of it left
    assert progress.left_s() == pytest.approx((6 + 30) / 2)


def test_the_first_line_gives_the_whole_estimate():
    progress, lines = _progress([Task("a", "", print, flops=600e9, family="mlp training")])
    progress.begin()
    assert lines == ["grid: 1 tasks (1 mlp training) with 1 worker(s), ~10 min (estimate) [at 0.0 min]"]


def test_forecasts_read_back_from_a_log():
    log = "\n".join([
        "grid: 2 tasks (2 cnn training) with 2 worker(s), ~30 min (estimate) [at 0.0 min]",
        "[1/2] a: CNN VAE [at 0.0 min]",
        "[1/2] a: epoch 1/15, 60.0 s/epoch, run ETA 14.0 min, grid ~20 min left [at 1.0 min]",
        "[1/2] a: done in 15.0 min, grid ~0.0 min left [at 15.0 min]",
        "grid: done in 15.2 min [at 15.2 min]",
    ])
    assert forecasts(log) == ([(0.0, 30.0), (1.0, 21.0), (15.0, 15.0)], 15.2)


# ---------------------------------------------------------------- what is missing

def test_flops_are_counted_per_network():
    mlp_step, mlp_forward, mlp_decode = parallel.network_flops("mlp", 2)
    cnn_step, cnn_forward, cnn_decode = parallel.network_flops("cnn", 2)
    assert 2 * mlp_forward < mlp_step <= 3 * mlp_forward  # backward: up to twice the forward
    assert cnn_step > 5 * mlp_step and 0 < mlp_decode < mlp_forward and 0 < cnn_decode < cnn_forward
    config = RunConfig(epochs=3, train_size=1000)
    task = parallel.training_task("t", config)
    assert task.epochs == 3 and task.family == "mlp training"
    assert task.flops == pytest.approx(3 * (mlp_step * 1000 + mlp_forward * 100) + mlp_forward * 10_000)


def _fake_grid(monkeypatch, configs: dict[str, RunConfig], likelihood: dict[str, RunConfig]) -> None:
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    monkeypatch.setattr(parallel, "grid", lambda only=None: dict(configs))
    monkeypatch.setattr(parallel, "LIKELIHOOD_MODELS", likelihood)
    monkeypatch.setattr(parallel, "BERNOULLI_MODELS", {})


def test_missing_tasks_are_what_the_cache_lacks(monkeypatch):
    a, b = RunConfig(), RunConfig(z=3)
    _fake_grid(monkeypatch, {"a": a, "a-again": a, "b": b}, {"lik-b": b})
    (cache_dir() / a.resolved("cpu").key("cpu")).mkdir(parents=True)  # a is trained, b is not
    tasks = missing_tasks(device="cpu")
    assert [(t.name, t.after) for t in tasks] == [("b", ()), ("likelihood lik-b", ("b",))]
    assert tasks[0].args == (b.resolved("cpu"),) and tasks[0].kwargs["device"] == "cpu"
    assert {t.name for t in missing_tasks(device="cpu", retrain=True)} == {"a", "b", "likelihood lik-b"}
    assert [t.name for t in missing_tasks("base", device="cpu")] == ["b"]  # one grid: no estimates


def test_a_full_cache_leaves_nothing_to_do(monkeypatch):
    a = RunConfig()
    _fake_grid(monkeypatch, {"a": a}, {})
    (cache_dir() / a.resolved("cpu").key("cpu")).mkdir(parents=True)
    assert missing_tasks(device="cpu") == []


# ---------------------------------------------------------------- the book build's extension

def _extension():
    spec = importlib.util.spec_from_file_location("train_grid", ROOT / "_ext" / "train_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_book_build_trains_exactly_what_is_missing_once(monkeypatch):
    ext = _extension()
    calls = []
    monkeypatch.setattr(parallel, "run_tasks", lambda tasks, jobs, **kw: calls.append((list(tasks), jobs)))
    missing = [Task("b", "", print), Task("likelihood b", "", print, after=("b",))]
    monkeypatch.setattr(parallel, "missing_tasks", lambda: list(missing))
    assert ext.train_missing("cache") == missing
    assert calls == [(missing, parallel.available_cores())]

    calls.clear()
    monkeypatch.setattr(parallel, "missing_tasks", lambda: [])  # a full cache
    assert ext.train_missing("cache") == [] and calls == []


def test_the_book_build_trains_nothing_in_quick_mode_or_without_execution(monkeypatch):
    ext = _extension()
    monkeypatch.setattr(parallel, "missing_tasks", lambda: pytest.fail("nothing should be looked at"))
    assert ext.train_missing("off") == []
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    assert ext.train_missing("cache") == []


def test_the_extension_is_registered():
    config = (ROOT / "_config.yml").read_text()
    assert "train_grid: _ext/" in config


def test_a_family_not_yet_seen_is_priced_at_its_calibrated_speed_times_the_load():
    cnn = Task("cnn", "", print, epochs=10, flops=100e9, family="cnn training")
    mlp = Task("mlp", "", print, epochs=5, flops=10e9, family="mlp training")
    lines: list[str] = []
    progress = Progress([cnn, mlp], 1, lines.append, 0.0, default_rate=1e9,
                         calibrated={"cnn training": 4e9, "mlp training": 8e9})
    assert progress.left_s() == pytest.approx(100e9 / 4e9 + 10e9 / 8e9)  # the calibrated speeds
    progress.started(cnn)
    progress.epoch("cnn", 1, 5.0)  # 10 GFLOP in 5 s: 2 GFLOP/s, half the calibrated speed
    assert progress.rate("mlp training") == pytest.approx(4e9)  # the MLP's own speed, halved likewise


def test_calibration_times_each_family_once_on_its_network():
    from vae_tut.experiments import RunConfig
    from vae_tut.parallel import calibrate, likelihood_task, training_task

    tasks = [training_task("a", RunConfig(arch="cnn")), training_task("b", RunConfig(arch="cnn", z=5)),
             likelihood_task("c", RunConfig())]
    rates = calibrate(tasks, 1)
    assert set(rates) == {"cnn training", "mlp likelihood"} and all(r > 1e6 for r in rates.values())
