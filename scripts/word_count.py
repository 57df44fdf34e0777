"""Words of prose per chapter: ``python scripts/word_count.py`` (the book aims at 24,000 or fewer).

Counts the whitespace-separated words of every Markdown cell of the notebooks in
``chapters/`` (code cells and outputs do not count) and prints one line per chapter
and the total. ``--max N`` exits with status 1 when the total is above N; status 2
(one line on stderr naming it) when there are no notebooks or one cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def words(notebook: Path) -> int:
    """Markdown words of one notebook; ValueError naming it if it is not UTF-8 JSON with cells."""
    try:
        cells = json.loads(notebook.read_bytes().decode("utf-8"))["cells"]
        if not cells:
            raise ValueError("no cells")
        return sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{notebook}: not a readable notebook ({type(err).__name__}: {err})") from None


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, help="fail when the total is above this")
    args = parser.parse_args(argv)
    paths = sorted((root / "chapters").glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {root / 'chapters'}", file=sys.stderr)
        return 2
    try:
        counts = {path.stem: words(path) for path in paths}
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    width = max(map(len, counts))
    for name, n in counts.items():
        print(f"{name:{width}s} {n:7,d}")
    total = sum(counts.values())
    print(f"{'total':{width}s} {total:7,d}")
    if args.max is not None and total > args.max:
        print(f"above {args.max:,} words", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
