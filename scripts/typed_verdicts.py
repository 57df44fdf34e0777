"""Typed verdicts about run results: ``python scripts/typed_verdicts.py [DIR]``.

The book's numbers are recomputed on every machine that builds it, and another
processor trains another model, as another seed would. A sentence that puts a
glued number next to a *typed* verdict ("the means are wider than the prior")
can therefore turn false in a rebuild while the build stays green. This check
finds such sentences in the chapters' Markdown and fails unless each one is
made safe in one of two ways.

The rule, per notebook:

1. **Prose.** Markdown cells only, without fenced code blocks, the opening line
   and the ``:option:`` lines of directives (a directive's title and body are
   prose), display and inline maths, code spans, links' targets and HTML tags.
   The prose is cut into sentences at ``.``, ``!`` or ``?`` followed by white
   space and a capital letter, a digit or ``(`` (not after "e.g.", "i.e.",
   "et al." and the like), and at paragraph, heading and list-item breaks.
2. **Candidate.** A sentence is a candidate when its *typed* text (the sentence
   with every role, code span and piece of maths removed) holds a verdict word or
   phrase of :data:`VERDICTS` (whole words, any case; "above" and "below" only as
   comparisons, see :data:`ABOVE_BELOW`), and a glued value
   (``{glue:text}`name``` or ``{glue}`name```) sits in the sentence itself or in
   the sentence just before or after it in the same paragraph. A verdict that
   lives inside a glued value (``glue("x-verdict", "wider than" if a > b else
   "not wider than")``) is not typed, so it never makes a candidate: that is the
   preferred fix, right in quick and in full builds alike.
3. **Asserted.** A candidate passes when some code cell of the same notebook
   holds an ``assert`` whose message states the sentence. The message may be a
   string literal, an f-string, or a name bound in the same cell to literals
   (``msg = "..."``, or a ``for`` loop over a literal list of pairs). Both the
   sentence and the message are normalised: each glue role, other role, code
   span, piece of maths and f-string replacement field becomes a wildcard;
   Markdown emphasis, link syntax, backslash escapes and punctuation go; case
   is ignored. What is left are words and wildcards, and the message states the
   sentence when the sentence's words occur in it in order and contiguously,
   where a wildcard on either side stands for any run of words on the other (so
   a message may spell out the number or the formula the sentence glues or
   typesets). Chapters skip assertions about trained results in quick mode
   (``if not quick_mode(): assert ...``); the check only reads the source.
4. **Excepted.** A candidate that is not about run results (a fact of maths, a
   number quoted from a paper) is listed in :data:`EXCEPTIONS` under its chapter
   by a piece of its normalised text, with the reason. :data:`PENDING` holds
   candidates of chapters whose authors have not yet fixed them; it should be
   empty. An entry that no longer matches a candidate is an error too, so
   neither list goes stale.

Without ``DIR`` the source notebooks of ``chapters/`` are read (``make test``
does this in ``tests/test_typed_verdicts.py``); with ``DIR``, a build's
``jupyter_execute`` folder. Exit status 1 when a sentence is unguarded or an
entry is stale, 2 when there are no notebooks.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent

# Words and phrases that state a comparison or a verdict. Whole words, any case; a typed one
# in a sentence with a glued number makes the sentence a candidate (see the module's docstring).
VERDICTS: tuple[str, ...] = (
    "ahead", "behind", "beat", "beats", "beaten",
    "exceed", "exceeds", "exceeded", "outperform", "outperforms",
    "wider", "narrower", "higher", "lower", "larger", "smaller", "bigger", "greater",
    "better", "worse", "best", "worst", "fall short", "falls short",
    "more than", "fewer than", "less than", "as many as", "twice",
    "close to", "closer", "far from", "near", "nearer", "within",
    "holds", "held", "agree", "agrees", "agreed", "match", "matches", "matched",
    "keeps about", "keep about", "on every seed", "on all seeds", "every run", "all runs",
    "without collapse", "collapse", "collapses", "collapsed",
    "both ends lose", "improve", "improves", "improved", "wins", "win", "lose", "loses",
)

# Candidates that are not verdicts about run results, per chapter: a piece of the sentence's
# normalised text (lower case, roles, code and maths left out; see normalise) -> why it may stay typed.
EXCEPTIONS: dict[str, dict[str, str]] = {
    "01_dimensionality_reduction": {
        "the best linear code with two numbers costs": "PCA is the best linear code by Pearson's theorem, "
                                                       "checked in the chapter (the error is the discarded variance)",
        "the best linear 2-d code costs": "the same theorem, in the summary",
    },
    "04_elbo": {
        "densities may exceed one": "a fact about densities (a narrow Gaussian's peak), not a run result",
    },
    "08_latent_size": {
        "so the report's wording": "quotes the report's claims; the verdicts on them are glued",
        "loss (one run each) |": "the report's claim; its verdict is the glued column",
        "| the cnn is worse at small": "the report's claim; its verdict is glued",
        "a lower loss means better reconstructions and a better bound": "what the loss measures (chapter 4)",
        "a lower loss need not mean better samples from the prior": "a caution; the verdict for z = 20 is glued",
    },
    "09_balancing_c": {
        "where few classes sit near the origin": "how to read the sample grids, not a result",
        "the report: \"less diverse\"": "quotes the report; the verdict on it is glued",
        "posterior collapse at": "a question; its answer is glued",
        "collapse comes with a larger": "the literature's finding, cited",
        "gives the test images the highest elbo": "the best c is picked by the computation itself",
        "the best is then": "the best c is picked by the computation itself",
        "for the best fixed": "the best fixed c is picked by the computation; the comparison with it is glued",
        "so collapse wins when": "algebra of the displayed costs",
    },
    "10_how_good": {
        "the best of our models costs": "the best model is picked by the computation; the verdict is glued",
    },
}

# Candidates in chapters whose fix is still to come (issue 19): same form as EXCEPTIONS.
# Each must become glued or asserted, and then leave this list; it should be empty.
PENDING: dict[str, dict[str, str]] = {}

ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "cf.", "vs.", "etc.", "approx.", "Fig.", "Eq.", "resp.")
WILD = "\x00"  # stands for any text: roles, code, maths, f-string fields
GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`[^`]*`")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
MATHS = [re.compile(r"\$\$.*?\$\$", re.DOTALL), re.compile(r"(?<![\\$])\$(?!\$)(?:\\.|[^$\\])+?\$")]
CODE_SPAN = re.compile(r"``[^`]+``|`[^`\n]+`")
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
HTML = re.compile(r"<[^>\n]+>")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
OPTION = re.compile(r"^\s*:[\w-]+:")
BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+\.)\s)|\n(?=\s*#)|\n(?=\s*\|)|\n(?=\s*>)")
END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z(\d\x00*{])")
# "above" and "below" also point within the page ("the table below"): they count only as comparisons,
# after a verb or an adverb of position ("lies below", "far above") or before what is compared ("above the").
ABOVE_BELOW = (r"(?:is|are|was|were|be|been|lies|lie|lay|stays?|stayed|remains?|remained|falls?|fell|sits?|"
               r"goes|went|rises?|rose|ends?|ended|far|well|just|slightly|still|all|both)\s+(?:\w+\s+)?(?:above|below)"
               r"|(?:above|below)\s+(?:that|those|the|its|their|our|ours|theirs|it|them|one|zero|a|an|\d)")
VERDICT = re.compile(r"\b(?:" + "|".join(re.escape(v).replace(r"\ ", r"\s+") for v in VERDICTS)
                     + "|" + ABOVE_BELOW + r")\b", re.IGNORECASE)


class Sentence(NamedTuple):
    """One sentence of prose: ``text`` as written, ``key`` normalised (see :func:`normalise`)."""

    notebook: str
    text: str
    key: str


def prose_blocks(markdown: str) -> str:
    """The prose of a Markdown cell: fenced code dropped, directives reduced to their title and body."""
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # open fences: (marker, is its body prose?)
    options = False
    for line in markdown.splitlines():
        m = FENCE.match(line)
        keep = all(k for _, k in stack)
        if m and stack and m.group(2)[0] == stack[-1][0][0] and len(m.group(2)) >= len(stack[-1][0]) \
                and not m.group(3).strip():
            stack.pop()
            out.append("")
            continue
        if m:
            info = m.group(3).strip()
            body = info.startswith("{") and not re.match(r"\{(code-cell|code|code-block|math|raw|bibliography|"
                                              r"glue:figure|glue:math|eval-rst)\}", info)
            stack.append((m.group(2), body))
            if keep and body:
                out.append(info.split("}", 1)[1].strip() + ".")  # the title, as a sentence
                options = True
            else:
                out.append("")
            continue
        if options and OPTION.match(line):
            continue
        options = False
        out.append(line if keep else "")
    return "\n".join(out)


def _mask(text: str) -> str:
    """Roles, code spans and maths replaced by WILD (glue roles by WILD + 'G' + WILD first)."""
    text = GLUE_ROLE.sub(f"{WILD}G{WILD}", text)
    text = ROLE.sub(WILD, text)
    text = CODE_SPAN.sub(WILD, text)
    for pattern in MATHS:
        text = pattern.sub(WILD, text)
    text = LINK.sub(r"\1", text)
    return HTML.sub(" ", text)


def normalise(text: str) -> str:
    """The comparable form of a sentence or a message: see rule 3 of the module's docstring.

    ``text`` may still hold roles, code spans and maths (a sentence) or already WILD
    characters (a message whose f-string fields were replaced).
    """
    text = _mask(text).replace(f"{WILD}G{WILD}", WILD)
    text = re.sub(r"\\(.)", r"\1", text)
    text = re.sub(r"(?<!\w)[*_]+|[*_]+(?!\w)", "", text)
    text = re.sub(r"\s+", " ", text).strip().lower()
    return re.sub(f"{WILD}(?:\\s*{WILD})+", WILD, text)


def paragraphs(markdown: str) -> list[list[str]]:
    """The sentences of a Markdown cell's prose, by paragraph, roles and maths kept as written."""
    prose = prose_blocks(markdown)
    # Hide what may contain sentence ends (maths, roles, code) while cutting, then put it back.
    hidden: list[str] = []

    def hide(m: re.Match) -> str:
        hidden.append(m.group(0))
        return f"{WILD}{len(hidden) - 1}{WILD}"

    def restore(part: str) -> str:
        while (m := re.search(f"{WILD}(\\d+){WILD}", part)):
            part = part[:m.start()] + hidden[int(m.group(1))] + part[m.end():]
        return part

    for pattern in (GLUE_ROLE, ROLE, CODE_SPAN, *MATHS):
        prose = pattern.sub(hide, prose)
    for abbr in ABBREVIATIONS:
        prose = prose.replace(abbr + " ", abbr.replace(".", "\x01") + " ")
    out = []
    for block in BREAK.split(prose):
        parts = [restore(p.replace("\x01", ".").strip()) for p in END.split(block)]
        if any(parts):
            out.append([p for p in parts if p])
    return out


def sentences(markdown: str) -> list[str]:
    """The sentences of a Markdown cell's prose (rule 1), roles and maths kept as written."""
    return [s for paragraph in paragraphs(markdown) for s in paragraph]


def typed_text(sentence: str) -> str:
    """What a sentence types itself: roles, code spans and maths removed."""
    return _mask(sentence).replace(f"{WILD}G{WILD}", " ").replace(WILD, " ")


def is_candidate(sentence: str, neighbours: tuple[str, ...] = ()) -> bool:
    """A typed verdict word in ``sentence`` and a glued value in it or in a neighbour (rule 2)."""
    return (any(GLUE_ROLE.search(s) for s in (sentence, *neighbours))
            and bool(VERDICT.search(typed_text(sentence))))


def _literal(node: ast.AST) -> str | None:
    """The text of a string literal or f-string (fields as WILD), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else WILD for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        if left is not None or right is not None:
            return (left or WILD) + (right or WILD)
    return None


def _strings(node: ast.AST) -> list[str]:
    return [s for n in ast.walk(node) if (s := _literal(n)) is not None]


def _bindings(node: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs that ``node`` binds: assignments and for loops (over their iterable)."""
    if isinstance(node, ast.Assign):
        return [(t, node.value) for t in node.targets]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [(node.target, node.value)]
    if isinstance(node, (ast.For, ast.comprehension)):
        return [(node.target, node.iter)]
    return []


def assert_messages(source: str) -> list[str]:
    """The messages of a code cell's ``assert`` statements, as text (rule 3)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    messages: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assert) and node.msg is not None):
            continue
        text = _literal(node.msg)
        if text is not None:
            messages.append(text)
            continue
        names = {n.id for n in ast.walk(node.msg) if isinstance(n, ast.Name)}
        sources: list[ast.AST] = []
        while True:  # follow the names through assignments and for-loop targets in this cell
            found = [value for other in ast.walk(tree) for target, value in _bindings(other)
                     if value not in sources and names & {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}]
            if not found:
                break
            sources += found
            names |= {n.id for value in found for n in ast.walk(value) if isinstance(n, ast.Name)}
        messages += [text for value in sources for text in _strings(value)]
    return messages


TOKEN = re.compile(f"[a-z0-9]+(?:['.,][a-z0-9]+)*|{WILD}")


def _tokens(norm: str) -> list[str]:
    return TOKEN.findall(norm)


WILD_SPAN = 4  # a WILD (a glued value, maths, an f-string field) stands for at most this many words


def _holds(sentence: list[str], message: list[str]) -> bool:
    """Whether the token list ``sentence`` occurs in ``message``, a WILD on either side matching a
    run of at most :data:`WILD_SPAN` tokens of the other (so a field cannot swallow the verdict)."""
    @functools.cache
    def rest(i: int, j: int) -> bool:  # sentence[i:] matches message[j:k] for some k
        if i == len(sentence):
            return True
        if sentence[i] == WILD:
            return any(rest(i + 1, k) for k in range(j, min(j + WILD_SPAN, len(message)) + 1))
        if j == len(message):
            return False
        if message[j] == WILD:
            return any(rest(k, j + 1) for k in range(i, min(i + WILD_SPAN, len(sentence)) + 1))
        return sentence[i] == message[j] and rest(i + 1, j + 1)

    return any(rest(0, j) for j in range(len(message) + 1))


def asserted(key: str, messages: list[str]) -> bool:
    """Whether one of ``messages`` states the sentence whose normalised text is ``key`` (rule 3)."""
    words = _tokens(key)
    return any(_holds(words, _tokens(normalise(message))) for message in messages)


def candidates(notebook: dict, name: str = "") -> list[Sentence]:
    """Every candidate sentence of a notebook (rule 2), asserted or not."""
    found = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for paragraph in paragraphs("".join(cell["source"])):
            for i, text in enumerate(paragraph):
                if is_candidate(text, tuple(paragraph[max(i - 1, 0):i] + paragraph[i + 1:i + 2])):
                    found.append(Sentence(name, text, normalise(text)))
    return found


def unguarded(notebook: dict, name: str = "", allowed: dict[str, str] | None = None) -> list[Sentence]:
    """Candidates that are neither asserted in a code cell nor matched by a piece of ``allowed``."""
    messages = [m for cell in notebook["cells"] if cell["cell_type"] == "code"
                for m in assert_messages("".join(cell["source"]))]
    allowed = allowed or {}
    return [s for s in candidates(notebook, name)
            if not asserted(s.key, messages) and not any(piece.lower() in s.key for piece in allowed)]


def allowed_for(name: str) -> dict[str, str]:
    """EXCEPTIONS and PENDING of one chapter together."""
    return {**EXCEPTIONS.get(name, {}), **PENDING.get(name, {})}


def stale(notebooks: dict[str, dict]) -> list[str]:
    """Entries of EXCEPTIONS and PENDING that match no candidate of their chapter."""
    out = []
    for listing, label in ((EXCEPTIONS, "EXCEPTIONS"), (PENDING, "PENDING")):
        for name, pieces in listing.items():
            if name not in notebooks:
                continue
            keys = [s.key for s in candidates(notebooks[name], name)]
            out += [f"{label}[{name!r}]: {piece!r}" for piece in pieces
                    if not any(piece.lower() in key for key in keys)]
    return out


def check(notebooks: dict[str, dict]) -> tuple[list[Sentence], list[str]]:
    """Unguarded sentences of all ``notebooks`` (name -> notebook) and stale list entries."""
    bad = [s for name, nb in notebooks.items() for s in unguarded(nb, name, allowed_for(name))]
    return bad, stale(notebooks)


def load(folder: Path) -> dict[str, dict]:
    """The chapter notebooks under ``folder`` (``chapters/*.ipynb`` or ``*.ipynb``), by name."""
    paths = sorted(folder.glob("chapters/*.ipynb")) or sorted(folder.glob("*.ipynb"))
    return {p.stem: json.loads(p.read_text()) for p in paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT,
                        help="a build's jupyter_execute folder (default: the source chapters)")
    args = parser.parse_args(argv)
    notebooks = load(args.folder)
    if not notebooks:
        print(f"no notebooks under {args.folder}", file=sys.stderr)
        return 2
    bad, old = check(notebooks)
    for s in bad:
        print(f"{s.notebook}: typed verdict beside a glued number, neither glued nor asserted:\n    {s.text}")
    for entry in old:
        print(f"stale entry, no such candidate any more: {entry}")
    print(f"{len(notebooks)} notebooks checked, {len(bad)} unguarded verdict sentences, {len(old)} stale entries")
    return 1 if bad or old else 0


if __name__ == "__main__":
    sys.exit(main())
