"""The benchmark's results files, one per CPU kind, and the table that shows them side by side.

``benchmarks/results/<kind>.json`` holds the last measurement of each row on
one kind of CPU (named by :func:`benchmarks.measure.kind_slug`), so results of
different machines accumulate instead of overwriting each other. The
Performance appendix renders every file with :func:`side_by_side`.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tabulate import tabulate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGETS = {  # the performance issues' targets on a 2-core CPU
    "mlp_peak_fraction": 0.55, "cnn_peak_fraction": 0.40, "default_vs_fp32": 1.05,
    "book_empty_minutes": 60.0, "book_full_minutes": 10.0, "tests_minutes": 4.0, "estimate_error": 0.25,
    "floor_ratio": 2.5, "book_fetched_minutes": 10.0,
}


def load_all(folder: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every results file in ``folder``: kind -> results, newest measurement first."""
    found = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return dict(sorted(found.items(), key=lambda kv: kv[1].get("measured", ""), reverse=True))


def grid_log(kind: str, folder: Path = RESULTS_DIR) -> str | None:
    """The committed log of a whole grid (``<kind>.grid.log``: ``reproduce``'s or the build's lines), if any."""
    path = Path(folder) / f"{kind}.grid.log"
    return path.read_text() if path.exists() else None


_AT = re.compile(r"\[at ([\d.]+) min\]$")
_FORECAST = re.compile(r"~([\d.]+) min (?:\(estimate\)|left)")


def forecasts(log: str) -> tuple[list[tuple[float, float]], float | None]:
    """From a log of the grid's progress lines (:class:`vae_tut.estimate.Progress`): each forecast as
    (minute said, minute the grid would end) and the minute it did end (``None`` if it did not)."""
    said, end = [], None
    for line in log.splitlines():
        at, left = _AT.search(line), _FORECAST.search(line)
        if at and line.startswith("grid: done"):
            end = float(at.group(1))
        elif at and left:
            said.append((float(at.group(1)), float(at.group(1)) + float(left.group(1))))
    return said, end


def forecast_errors(log: str, least_left: float = 5.0) -> list[tuple[float, float, float]]:
    """(minute said, minutes it said were left, minutes that were left) for each forecast of a finished
    grid's log made with at least ``least_left`` real minutes to go; empty if the grid did not finish.
    Closer to the end a whole-minute forecast's relative error says little."""
    said, end = forecasts(log)
    if end is None:
        return []
    return [(at, ends - at, end - at) for at, ends in said if end - at >= least_left]


def _status(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "not met"


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results.get("rows", {})
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _mark(text: str, ok: str | None, ci: bool) -> str:
    if ok is None or ci:
        return text
    return f"{text} ({ok})"


def _loader(r: dict, ci: bool) -> str | None:
    x = _get(r, "loader")
    return x and f"{x['dataloader_s']:.2f} s / {x['vae_tut_s']:.2f} s ({x['speedup']:.1f}× faster)"


def _peaks(r: dict, ci: bool) -> str | None:
    x = _get(r, "throughput")
    if not x:
        return None
    runs = [x["fp32_peak_gflops"], x.get("fp32_peak_repeat_gflops", x["fp32_peak_gflops"])]
    fp32 = f"{min(runs):.0f}–{max(runs):.0f}" if round(min(runs)) != round(max(runs)) else f"{runs[0]:.0f}"
    native = x.get("native_bf16", True)
    return f"{fp32} / {x['bf16_peak_gflops']:.0f}{'' if native else ' (emulated)'} GFLOP/s"


def _step(r: dict, ci: bool) -> str | None:
    x = _get(r, "throughput", "cnn_step_ms")
    if not x:
        return None
    ratio = x["bf16"] / x["fp32"]
    verdict = f"bf16 {1 / ratio:.1f}× faster" if ratio < 1 else f"bf16 {ratio:.1f}× slower"
    return f"{x['fp32']:.0f} / {x['bf16']:.0f} ms ({verdict})"


def _default_precision(r: dict, ci: bool) -> str | None:
    x = _get(r, "throughput", "default_precision")
    return x and x.get("cnn")


def _fraction(arch: str) -> Callable[[dict, bool], str | None]:
    def cell(r: dict, ci: bool) -> str | None:
        x = _get(r, "throughput")
        if not x:
            return None
        precision = (x.get("default_precision") or {}).get(arch, "fp32")
        y = x.get(f"{arch}_{precision}")
        if not y:
            return None
        target = TARGETS[f"{arch}_peak_fraction"]
        text = f"{y['peak_fraction']:.0%} ({precision}, {y['epoch_s']:.1f} s/epoch, {y['gflops']:.0f} GFLOP/s)"
        return _mark(text, _status(y["peak_fraction"], target, True), ci)
    return cell


def _default_vs_fp32(r: dict, ci: bool) -> str | None:
    x = _get(r, "throughput")
    if not x or "cnn_fp32" not in x or "default_precision" not in x:
        return None
    precision = x["default_precision"]["cnn"]
    ratio = x[f"cnn_{precision}"]["epoch_s"] / x["cnn_fp32"]["epoch_s"]
    return _mark(f"{ratio:.2f}× ({precision})", _status(ratio, TARGETS["default_vs_fp32"], False), ci)


def _threads(arch: str) -> Callable[[dict, bool], str | None]:
    def cell(r: dict, ci: bool) -> str | None:
        x = _get(r, "threads", arch)
        if not x:
            return None
        return " / ".join(f"{x[k]:.1f}" for k in ("default", "OMP_WAIT_POLICY=PASSIVE", "1 thread")) + " s"
    return cell


def _parallel(arch: str) -> Callable[[dict, bool], str | None]:
    def cell(r: dict, ci: bool) -> str | None:
        x = _get(r, "parallel", arch)
        if not x:
            return None
        return (f"{x['one_process_s']:.1f} s vs {x['throughput_s']:.1f} s "
                f"({x['speedup']:.2f}× the throughput)")
    return cell


def _accuracy(r: dict, ci: bool) -> str | None:
    x = _get(r, "accuracy")
    if not x:
        return None
    if "skipped" in x:
        return "not needed: no bf16 units"
    runs = [y for y in x["runs"].values() if y["precision"] == "bf16"]
    inside = sum(y["within_2sd"] for y in runs)
    return _mark(f"{inside} of {len(runs)} bf16 runs within 2 SD", "met" if inside == len(runs) else "not met",
                 ci)


def _likelihood(r: dict, ci: bool) -> str | None:
    x = _get(r, "likelihood")
    return x and (f"{x['seconds_per_model'] / 60:.1f} min a model; its {x['cnn_models']} CNN models on "
                  f"{x['cores']} workers: {x['minutes_all_cnn']:.1f} min")


def _book(part: str, target: str) -> Callable[[dict, bool], str | None]:
    def cell(r: dict, ci: bool) -> str | None:
        x = _get(r, "book")
        if not x:
            return None
        if not x["ok"]:
            return "failed"
        minutes = x[f"{part}_cache_minutes"]
        peaks = [p for p in (x["grid"].get("peak_rss_mb"), x["first_build"].get("peak_rss_mb")) if p]
        peak = f"; peak {max(peaks):.0f} MiB" if peaks else ""
        text = (f"{minutes:.1f} min (grid of {x['runs']} runs {x['grid']['minutes']:.1f} + first build "
                f"{x['first_build']['minutes']:.1f}{peak})"
                if part == "empty" else
                f"{minutes:.1f} min (reproduce with nothing to train {x['grid_again']['minutes']:.1f} + build)")
        return _mark(text, _status(minutes, TARGETS[target], False), ci)
    return cell


def _plain_build(r: dict, ci: bool) -> str | None:
    x = _get(r, "plain_build")
    if not x:
        return None
    if x["returncode"] != 0:
        return "failed"
    text = (f"{x['minutes']:.1f} min (training and estimates before the notebooks {x['grid_minutes']:.1f} + "
            f"notebooks {x['minutes'] - x['grid_minutes']:.1f})")
    return _mark(text, _status(x["minutes"], TARGETS["book_empty_minutes"], False), ci)


def _floor(r: dict, ci: bool) -> str | None:
    flops, peak = _get(r, "flops"), _get(r, "throughput", "fp32_peak_gflops")
    if not flops or not peak:
        return None
    f = floor(r)
    assert f is not None
    minutes = f["floor_minutes"]
    cnn = flops["train_tflop"]["cnn"] / flops["total_tflop"]
    text = (f"{flops['total_tflop']:.0f} TFLOP ({cnn:.0%} CNN training): {minutes:.0f} min at the whole "
            f"fp32 peak, {minutes / TARGETS['cnn_peak_fraction']:.0f} min at {TARGETS['cnn_peak_fraction']:.0%} of it")
    if "ratio" in f:
        text += f"; the grid took {f['ratio']:.1f}× the floor"
        return _mark(text, _status(f["ratio"], TARGETS["floor_ratio"], False), ci)
    return text


def floor(r: dict) -> dict[str, float] | None:
    """The grid's floor on one kind: the FLOP count of every run and estimate divided by the fp32
    matrix-multiply peak (minutes), and, where the grid was timed, its wall time and the ratio of the two."""
    flops, peak = _get(r, "flops"), _get(r, "throughput", "fp32_peak_gflops")
    if not flops or not peak:
        return None
    out = {"total_tflop": flops["total_tflop"], "fp32_peak_gflops": peak,
           "floor_minutes": flops["total_tflop"] * 1e3 / peak / 60}
    grid = _get(r, "plain_build", "grid_minutes")
    if grid:
        out.update(grid_minutes=grid, ratio=grid / out["floor_minutes"])
    return out


def _estimate(r: dict, ci: bool) -> str | None:
    x = _get(r, "estimate")
    if not x:
        return None
    parts, worst = [], 0.0
    for name, e in x["parts"].items():
        error = e["estimate_min"] / e["actual_min"] - 1
        worst = max(worst, abs(error))
        parts.append(f"{name} {e['estimate_min']:.1f} vs {e['actual_min']:.1f} min ({error:+.0%})")
    if "worst_line_error" in x:  # every later forecast of the log, with five minutes or more to go
        worst = max(worst, x["worst_line_error"])
        parts.append(f"largest miss of {x['lines_checked']} later forecasts {x['worst_line_error']:.0%}")
    return _mark("; ".join(parts), _status(worst, TARGETS["estimate_error"], False), ci)


def _cnn_options(r: dict, ci: bool) -> str | None:
    x = _get(r, "cnn_options")
    if not x:
        return None
    parts = []
    if "compiled_step_ms" in x:
        parts.append(f"compiled {x['compiled_step_ms'] / x['eager_step_ms']:.2f}× ({x['compile_s']:.0f} s to compile)")
    parts.append(f"folded {x['is_folded_s'] / x['is_plain_s']:.2f}×")
    parts.append(f"test passes {x['test_share_of_run']:.1%} of a run")
    return "; ".join(parts)


def _rebuild(r: dict, ci: bool) -> str | None:
    x = _get(r, "book")
    return x and f"{x['rebuild']['wall_s']:.0f} s"


def _tests(r: dict, ci: bool) -> str | None:
    x = _get(r, "tests")
    if not x:
        return None
    if x["returncode"] != 0:
        return "failed"
    peak = "" if x.get("peak_rss_mb") is None else f", peak {x['peak_rss_mb']:.0f} MiB"
    return _mark(f"{x['minutes']:.1f} min{peak}",
                 _status(x["minutes"], TARGETS["tests_minutes"], False), ci)


def _elu(r: dict, ci: bool) -> str | None:
    x = _get(r, "elu")
    if not x:
        return None
    k = x["kernel_ms"]
    text = f"elu {k['elu'] / k['exp']:.0f}× an exp (expm1 {k['expm1'] / k['exp']:.0f}×)"
    if "cnn_fp32" not in x:  # measured before December 2026: one step per network at its default precision
        mlp, cnn = x["mlp"]["speedup"], x["cnn"]["speedup"]
        return text + f"; with an exp-based ELU a step is {mlp:.2f}× (MLP) and {cnn:.2f}× (CNN) as fast"
    names = ("cnn_fp32", "cnn_bf16", "mlp_fp32")
    steps = ", ".join(f"{name.replace('_', ' ').upper()} {x[name]['speedup']:.2f}×" for name in names)
    return text + f"; with an exp-based ELU a step is as fast as: {steps}"


def _step_checks(r: dict, ci: bool) -> str | None:
    x = _get(r, "step_checks")
    if not x:
        return None
    return "; ".join(f"{a.upper()} ({x[a]['precision']}) {x[a]['step_ms']['checked']:.1f} → "
                     f"{x[a]['step_ms']['unchecked']:.1f} ms" for a in ("mlp", "cnn"))


def _book_fetched(r: dict, ci: bool) -> str | None:
    x = _get(r, "book_fetched")
    if not x or "minutes" not in x:
        return None
    if x["returncode"] != 0:
        return f"failed after {x['minutes']:.1f} min ({x['fetched']} runs fetched, {x['trained']} trained)"
    text = f"{x['minutes']:.1f} min ({x['fetched']} runs fetched, {x['trained']} trained)"
    return _mark(text, _status(x["minutes"], TARGETS["book_fetched_minutes"], False), ci)


MEASUREMENTS: list[tuple[str, str, Callable[[dict, bool], str | None]]] = [
    ("MLP epoch: torchvision DataLoader + ToTensor / vae_tut trainer", "", _loader),
    ("matrix-multiply peak, fp32 / bf16", "", _peaks),
    ("CNN training step (256 images), fp32 / bf16 autocast", "", _step),
    ("CNN precision chosen by `auto`", "", _default_precision),
    ("MLP training, share of the fp32 peak", f"≥ {TARGETS['mlp_peak_fraction']:.0%}", _fraction("mlp")),
    ("CNN training (default precision), share of the fp32 peak", f"≥ {TARGETS['cnn_peak_fraction']:.0%}",
     _fraction("cnn")),
    ("CNN epoch, default precision / fp32", f"≤ {TARGETS['default_vs_fp32']:.2f}×", _default_vs_fp32),
    ("MLP epoch: default / OMP_WAIT_POLICY=PASSIVE / 1 thread", "", _threads("mlp")),
    ("CNN epoch: default / OMP_WAIT_POLICY=PASSIVE / 1 thread", "", _threads("cnn")),
    ("MLP epoch: one process on every core vs one single-thread process per core", "", _parallel("mlp")),
    ("CNN epoch: one process on every core vs one single-thread process per core", "", _parallel("cnn")),
    ("bf16 runs' final losses vs the fp32 seed spread", "within 2 SD", _accuracy),
    ("chapter 10's importance sampling (1 thread)", "", _likelihood),
    ("CNN, 1 thread: compiled / eager training step; BN-folded / plain importance sampling; "
     "the test passes' share of a run", "", _cnn_options),
    ("ELU, 1 thread: torch's kernel against exp; a training step with an exp-based ELU", "", _elu),
    ("training step, 1 thread: with the per-batch checks → checked once per epoch", "", _step_checks),
    ("arithmetic of `make book` and the least time it can take", "", _floor),
    ("`make book` from an empty run cache", f"≤ {TARGETS['book_empty_minutes']:g} min",
     _book("empty", "book_empty_minutes")),
    ("`jupyter-book build .` on a fresh clone, empty run cache", f"≤ {TARGETS['book_empty_minutes']:g} min",
     _plain_build),
    ("`make book` on a fresh clone, runs fetched from a local server", f"≤ {TARGETS['book_fetched_minutes']:g} min",
     _book_fetched),
    ("`make book` from a full run cache", f"≤ {TARGETS['book_full_minutes']:g} min",
     _book("full", "book_full_minutes")),
    ("the grid's first estimate (and later ones) against the time it took",
     f"within {TARGETS['estimate_error']:.0%}", _estimate),
    ("rebuild of every page from the execution cache", "", _rebuild),
    ("`make test` from an empty run cache", f"≤ {TARGETS['tests_minutes']:g} min", _tests),
]


def wrap_label(text: str, width: int = 32) -> str:
    """``text`` broken into lines of at most ``width`` characters, for figure labels."""
    return "\n".join(textwrap.wrap(text, width))


def kind_heading(results: dict[str, Any]) -> str:
    """A column heading for one kind: its CPU, flags and the date measured."""
    m = results.get("machine", {})
    flags = ", ".join(m.get("flags", [])) or "?"
    forced = f"; torch forced to {m['kernels_forced']} kernels" if m.get("kernels_forced") else ""
    measured = results.get("measured", "?")
    return f"{m.get('cpu', '?')} ({flags}{forced}), {measured if '(' in measured else measured[:10]}"


def side_by_side(kinds: dict[str, dict[str, Any]]) -> str:
    """One Markdown table: a row per measurement, a column per CPU kind (blank where not measured)."""
    headers = ["measurement", "target", *(kind_heading(r) for r in kinds.values())]
    table = []
    for label, target, cell in MEASUREMENTS:
        values = []
        for results in kinds.values():
            ci = results.get("mode") == "ci"
            try:
                values.append(cell(results, ci) or "")
            except (KeyError, TypeError, ZeroDivisionError):
                values.append("")
        if any(values):
            table.append([label, target, *values])
    return tabulate(table, headers, tablefmt="github")


def describe(kinds: dict[str, dict[str, Any]]) -> str:
    """One line per kind: where its numbers come from (mode, torch, threads, a note if any)."""
    lines = []
    for results in kinds.values():
        m = results.get("machine", {})
        text = (f"* **{kind_heading(results)}**: {m.get('cores', '?')} cores, torch {m.get('torch', '?')} "
                f"({m.get('torch_kernels', '?')} kernels), {results.get('mode', '?')} mode")
        if results.get("note"):
            text += f". {results['note']}"
        lines.append(text)
    return "\n".join(lines)
