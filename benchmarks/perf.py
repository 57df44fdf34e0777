"""How fast is vae_tut on this machine? One command, one table (the Performance appendix).

    python -m benchmarks.perf                  # full mode: about 1.5 h on a 2-core laptop CPU
    python -m benchmarks.perf --rows throughput parallel   # some rows only
    python -m benchmarks.perf --ci             # every row on tiny inputs, for tests

Each row runs in its own Python process, so that its peak memory is its own.
Comparisons are measured side by side in the same run and reported as ratios,
because a shared machine's speed drifts. Full-mode results go to
``benchmarks/results/<kind>.json``, one file per kind of CPU (its model and the
flags that decide torch's kernels), so results of several machines accumulate;
the Performance appendix shows every file side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .measure import ROOT, kind_slug, machine
from .report import RESULTS_DIR, describe, side_by_side
from .rows import MODES, ROWS, Mode, measure_row


def _run_row_process(name: str, mode: Mode) -> dict[str, Any]:
    """Run one row in a fresh process; its result plus its own peak memory."""
    cmd = [sys.executable, "-m", "benchmarks.perf", "--row", name, "--mode", mode.name]
    if mode.extra.get("grid_cache"):
        cmd += ["--grid-cache", str(mode.extra["grid_cache"])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark row {name!r} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="every row on tiny inputs (for the test suite)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to measure")
    parser.add_argument("--out", help="JSON file to write or update (default: benchmarks/results/<kind>.json "
                        "in full mode, nothing in --ci mode)")
    parser.add_argument("--grid-cache", help="run cache for the book row (default: a new empty folder)")
    parser.add_argument("--note", help="a sentence about this machine, shown beside its results")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = MODES["ci" if args.ci else args.mode]
    if not args.row and args.grid_cache and "book" in args.rows and Path(args.grid_cache).is_dir() \
            and any(Path(args.grid_cache).iterdir()):
        parser.error(f"--grid-cache {args.grid_cache} is not empty; the book row times training "
                     "from an empty cache")
    mode.extra.update({"grid_cache": args.grid_cache})

    if args.row:  # inside the per-row process
        print(json.dumps(measure_row(args.row, mode)))
        return 0

    here = machine()
    out = Path(args.out) if args.out else (None if mode.name == "ci" else RESULTS_DIR / f"{kind_slug(here)}.json")
    results: dict[str, Any] = {}
    if out is not None and out.exists():
        results = json.loads(out.read_text())
        if results.get("mode") != mode.name:
            results = {}
    results.update({"mode": mode.name, "machine": here})
    if args.note:
        results["note"] = args.note
    results.setdefault("rows", {})
    for name in args.rows:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        value = _run_row_process(name, mode)
        value["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        results["rows"][name] = value
        results["measured"] = value["measured_at"]
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1) + "\n")
    kinds = {"this machine": results}
    print(describe(kinds))
    print()
    print(side_by_side(kinds))
    if out is not None:
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
