"""Numbers typed into a chapter's prose that its own computations print: ``python scripts/unglued_numbers.py DIR``.

A number that the runs compute belongs in the prose through ``glue``, so that it
cannot go stale when a run changes. This check reads the executed notebooks of a
build (``DIR`` = ``_build_quick/_build/jupyter_execute`` or ``_build/jupyter_execute``)
and, per chapter, lists every decimal number with three or more significant digits
in a Markdown cell (outside maths, code and roles) that equals, at the prose's
precision, a number in one of the chapter's outputs. Numbers quoted from the report
or from papers are typed on purpose: :data:`EXCEPTIONS` lists them per chapter.
Exit status 1 when anything is found, 2 when there are no notebooks or one cannot
be read (one line on stderr naming it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# Typed on purpose: the reference report's and the literature's numbers, quoted beside ours.
EXCEPTIONS: dict[str, set[str]] = {
    "05_mlp_vae": {"86.76"},
    "appendix_reproduce": {"13.4"},
    "07_mlp_vs_cnn": {"13.4"},
    "10_how_good": {"13.4", "1.05", "1.06"},  # + published bits/dim of RealNVP and Glow
}
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")
STRIP = [
    re.compile(r"```.*?```", re.S),          # fenced blocks: code, directives' bodies stay prose below
    re.compile(r"\$\$.*?\$\$", re.S),        # display maths
    re.compile(r"\$[^$\n]+\$"),              # inline maths
    re.compile(r"`[^`\n]*`"),                # code spans and the targets of roles ({glue:text}`name`)
    re.compile(r"https?://\S+"),
]


def significant_digits(text: str) -> int:
    """Significant digits of a decimal written as ``text`` ("0.063" has 2, "13.40" has 4)."""
    return len(text.replace(".", "").lstrip("0"))


def prose_numbers(markdown: str) -> set[str]:
    """Decimal numbers with >= 3 significant digits in Markdown, outside maths, code and roles."""
    for pattern in STRIP:
        markdown = pattern.sub(" ", markdown)
    return {n for n in NUMBER.findall(markdown) if significant_digits(n) >= 3}


def output_numbers(cells: list[dict]) -> list[float]:
    """Every decimal number in the text outputs of ``cells``."""
    found = []
    for cell in cells:
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")]
            for mime in ("text/plain", "text/markdown", "text/html"):
                texts.append(out.get("data", {}).get(mime, ""))
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                found += [float(n) for n in NUMBER.findall(text)]
    return found


def unglued(notebook: dict, exceptions: set[str] = frozenset()) -> set[str]:
    """Prose numbers of ``notebook`` that equal an output number at the prose's precision."""
    cells = notebook["cells"]
    prose = set()
    for cell in cells:
        if cell["cell_type"] == "markdown":
            prose |= prose_numbers("".join(cell["source"]))
    outputs = output_numbers(cells)
    hits = set()
    for text in prose - set(exceptions):
        decimals = len(text.split(".")[1])
        if any(round(x, decimals) == float(text) for x in outputs):
            hits.add(text)
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the build's jupyter_execute folder")
    args = parser.parse_args(argv)
    notebooks = sorted(args.folder.glob("chapters/*.ipynb")) or sorted(args.folder.glob("*.ipynb"))
    if not notebooks:
        print(f"no executed notebooks under {args.folder}: build the book first", file=sys.stderr)
        return 2
    bad = 0
    for path in notebooks:
        try:
            notebook = json.loads(path.read_bytes().decode("utf-8"))
            if not notebook["cells"]:
                raise ValueError("no cells")
            hits = unglued(notebook, EXCEPTIONS.get(path.stem, set()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            print(f"{path}: not a readable notebook ({type(err).__name__}: {err})", file=sys.stderr)
            return 2
        if hits:
            bad += 1
            print(f"{path.stem}: typed numbers that its outputs compute: {', '.join(sorted(hits))}")
    print(f"{len(notebooks)} chapters checked, {bad} with unglued numbers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
