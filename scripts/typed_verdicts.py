"""Typed verdicts about run results: ``python scripts/typed_verdicts.py [DIR]``.

The book's numbers are recomputed on every machine that builds it, and another
processor trains another model, as another seed would. A *typed* verdict about
the results ("the means are wider than the prior", "the CNN is ahead") can
therefore turn false in a rebuild while the build stays green. This check finds
such sentences in the chapters' Markdown and fails unless each one is made safe
in one of two ways.

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
   comparisons, see :data:`ABOVE_BELOW`), whether or not a number sits near it.
   A verdict that lives inside a glued value (``glue("x-verdict", "wider than"
   if a > b else "not wider than")``) is not typed, so it never makes a
   candidate: that is the preferred fix, right in quick and in full builds alike.
3. **Asserted.** A candidate passes when some code cell of the same notebook
   holds an ``assert`` whose message *is* the sentence. The message may be a
   string literal (its ``str.format`` fields count as fields, as in
   ``"...".format(x)``), an f-string, or a name bound in the same cell to
   literals (``msg = "..."``, or a ``for`` loop over a literal list of pairs).
   Both the sentence and the message are normalised: each glue role, other role,
   code span, piece of maths and field becomes a placeholder (adjacent ones
   merge into one); Markdown emphasis, link syntax, backslash escapes and
   punctuation go; case is ignored. What is left
   is a list of words, numbers and placeholders, and the message is the
   sentence when the two lists are equal, except that a placeholder on either
   side may stand for exactly one *value* on the other: a number or a
   placeholder, never a word. So a message may spell out a glued number
   ("rather than 1" for "rather than $1$"), but no field can stand for a
   verdict, and no part of a longer message asserts a sentence. Chapters skip
   assertions about trained results in quick mode (``if not quick_mode():
   assert ...``); the check only reads the source.
4. **Excepted.** A candidate that is not about run results (a fact of maths, a
   number quoted from a paper) is listed in :data:`EXCEPTIONS` under its chapter
   by a piece of its normalised text, with the reason. :data:`PENDING` holds
   candidates of chapters whose authors have not yet fixed them; it should be
   empty. An entry that no longer matches a candidate is an error too, so
   neither list goes stale.

Without ``DIR`` the source notebooks of ``chapters/`` are read (``make test``
does this in ``tests/test_typed_verdicts.py``); with ``DIR``, a build's
``jupyter_execute`` folder. Each unguarded sentence is printed with its
notebook and cell index. Exit status 1 when a sentence is unguarded or an entry
is stale, 2 when there are no notebooks or one cannot be read (one line on
stderr naming it).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent

# Words and phrases that state a comparison or a verdict. Whole words, any case; a typed one
# makes its sentence a candidate (see the module's docstring).
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
    "overlap", "overlaps", "tracks", "reproduces", "reproduced", "faster", "slower", "several times",
)
# Words that state a verdict only about a number: "only", "most", "the same" are also everyday words of
# teaching prose ("the same three lines do it"), so they make a candidate only beside a glued value.
NEAR_NUMBER_VERDICTS: tuple[str, ...] = (
    "all", "none", "only", "little", "most", "mostly", "same", "fits", "sensible", "default",
)
# What a sentence about run results names; a verdict word with one of these makes a candidate even
# with no glued value near it ("the reconstruction term does most of the falling" is about a run).
RESULT_WORDS = re.compile(
    r"\b(?:runs?|models?|mlps?|cnns?|vaes?|autoencoders?|loss(?:es)?|elbos?|kl|rates?|distortions?|samples|"
    r"reconstructions?|bits|accuracy|classifier|seeds?|epochs?|posteriors?|trained|training|test|sigma-vae)\b",
    re.IGNORECASE,
)

# Candidates that are not verdicts about run results, per chapter: a piece of the sentence's
# normalised text (lower case, roles, code and maths left out; see normalise) -> why it may stay typed.
EXCEPTIONS: dict[str, dict[str, str]] = {
    "01_dimensionality_reduction": {
        "deep autoencoders reconstruct mnist far better than pca": "a cited result (Hinton and Salakhutdinov)",
        "no other linear encoder/decoder pair has a smaller": "Pearson's theorem, checked in the chapter",
        "to beat pca, an autoencoder has to be non-linear": "follows from Pearson's theorem",
        "the best linear code with two numbers costs": "PCA is the best linear code by Pearson's theorem, "
                                                       "checked in the chapter (the error is the discarded variance)",
        "the best linear 2-d code costs": "the same theorem, in the summary",
    },
    "02_autoencoders": {
        "parameters sit in the two layers next to the pixels": "a count of the architecture, the same in every build",
        "the uniform codes mostly land in the empty parts": "describes the sample grid shown beside it",
        "the whole standard normal fits inside the crowded core": "describes the samples and the scatter beside it",
        "it fixes the scale, and the classes mix better": "an exercise's answer about a model the reader fits",
    },
    "03_vae_intuition": {
        "the ellipses of neighbouring images overlap": "describes the zoomed scatter beside it",
        "the autoencoder's strips flip from one shape to another": "describes the two decoded strips beside it",
        "the autoencoder's samples are mostly bold digits": "describes the sample grid beside it; the entropy is glued",
        "as the evidence lower bound": "the ELBO's name",
        "are they better or worse samples than those from the prior": "an exercise about the reader's own samples",
        "worse: the box's corners lie outside the disc": "the exercise's answer, about the reader's own samples",
    },
    "04_elbo": {
        "- derive the evidence lower bound (elbo) and its gap to the ": "the ELBO's name, in the objectives",
        ", we write down a probabilistic model of the data, see that ": "the ELBO's name",
        "- the elbo falls short of the log-evidence by exactly the kl": "a theorem, derived in the chapter",
        "the reconstruction term asks that codes drawn from": "what the term asks for (maths)",
        "makes errors expensive and buys precise codes with kl; a lar": "what c does in the loss (algebra of the displayed loss)",
        "weighs the kl 20 times less than that decoder's elbo.": "algebra: c as beta",
        "matched to the model's squared error, and they grow without ": "the statement of what compares across c; chapter 10's exercise shows it",
        "check (a): closed form against sampling. for a three-dimensi": "announces a check that is asserted in code",
        ", so the posterior has a strong negative correlation, which ": "the toy model's posterior, computed and plotted beside",
        "the candidates: the posterior itself; the best diagonal gaus": "names the candidates (the best diagonal Gaussian is a theorem, cited)",
        ", once with the posterior's covariance and once with the bes": "the best diagonal Gaussian is a theorem, cited",
        "both elbo curves stay below the log-evidence.": "a theorem (the bound), on a toy model computed exactly",
        "on the right, the best diagonal": "describes the plot beside it",
        "each of 100,000 samples, drawn with the package's": "how the code computes per-sample gradients",
        "chapter 5 builds the networks behind": "a pointer, not a result",
        "can you tell which gives the data a higher elbo from these n": "an exercise",
        "is a negative elbo (": "an exercise's answer (algebra)",
        "over the samples (a tiny bias, removable by leaving each sam": "an exercise's answer (algebra)",
        "densities may exceed one": "a fact about densities (a narrow Gaussian's peak), not a run result",
    },
    "06_cnn_vae": {
        "times as many parameters as the cnn's": "a count of the architecture, the same in every build",
        "compare the class layout with chapter 5's": "how to read the pictures beside it",
        "the report found the cnn's generations": "quotes the report; chapter 7 tests it",
    },
    "07_mlp_vs_cnn": {
        "section 4.1 of the report": "quotes the report's claims; the verdicts on them are glued",
        "with two numbers per image neither model keeps details": "describes the reconstructions shown beside it",
        "a model that memorises its training images": "what memorising means, before the measurement",
        "one seed per run.": "how to read a difference (method), not a result",
        "comparable only within one data set and one": "which numbers compare (chapter 4), not a result",
        "the report's larger claim": "quotes the report; chapter 8 tests it",
        "describe an experiment that decides whether the difference": "an exercise",
        "if one rate suits its network better": "an exercise's answer about an experiment to run",
        "give both the same budget": "an exercise's answer about an experiment to run",
    },
    "08_latent_size": {
        "the samples are bad because the latent space is sparse": "quotes the report's claim",
        "loss (one run each) |": "the report's claim; its verdict is the glued column",
        "| the cnn is worse at small": "the report's claim; its verdict is glued",
        "a lower loss need not mean better samples from the prior": "a caution; the verdict for d = 20 is glued",
        "the cnn is worse than the mlp at small": "quotes the report's claim",
        "rather than read the answer off the plot": "the method; the verdict is glued",
        "has collapsed to the prior, known as posterior collapse": "a definition",
        "claim 2: do prior samples fall far from the data": "the report's claim as a heading",
        "a raw distance means little": "the method: the definition of off the data",
        "a classifier can be confident about noise": "the method",
        "the report finds the cnn worse than the mlp": "quotes the report; the verdict is glued in the table",
        "the table puts the two side by side": "how to read the table (lower is better)",
        "a lower loss means a better bound": "what the loss measures (chapter 4)",
        "is measured against held-out test codes": "the method, in the summary",
        "then apply this chapter's test": "an exercise",
        "points fill a ball whose radius grows like": "an exercise's answer (geometry)",
        "has rank at most 10, so its null space": "an exercise's answer (linear algebra)",
        "the report argues that": "quotes the report, in an exercise",
        "a model can therefore add dimensions at no cost": "an exercise's answer (the algebra of the KL)",
    },
    "09_balancing_c": {
        "the model \"focuses on reconstruction\", with less diverse sam": "quotes the report's claims; the verdicts on them are glued",
        "holds the five configurations, the report's mlp on mnist wit": "names the grid's configurations",
        ", which says nothing about quality: the same squared error c": "algebra of the loss (1/(2c)); the range is glued",
        "of the prior's samples, so it marks where generation happens": "a property of the prior (maths)",
        "- chapter 2's classifier verdict on decoded prior samples: m": "what the classifier measures",
        "- collapse: the kl per dimension and the number of active di": "what is measured",
        "show where the line runs: a latent dimension collapses when ": "a cited result",
        "the best is": "the best c is picked by the computation; the comparison is glued",
        "aims at the highest elbo, not at the best samples; to trade ": "what learning c optimises (maths)",
        ", and the best decoder outputs the mean training image for e": "an exercise",
        "(you need the average squared distance of a training image t": "an exercise",
        "the collapsed loss is": "an exercise's answer (algebra)",
        "where few classes sit near the origin": "how to read the sample grids, not a result",
        "the report: \"less diverse\"": "quotes the report; the verdict on it is glued",
        "posterior collapse at": "a question; its answer is glued",
        "collapse comes with a larger": "the literature's finding, cited",
        "so collapse wins when": "algebra of the displayed costs",
    },
    "appendix_reproduce": {
        "we call a difference within the seed spread": "a definition",
        "a candidate fits when neither printed term": "a definition; each candidate's verdict is glued",
        "a reading that does not fit is not reproduced by one run": "what a verdict of the table means",
    },
    "10_how_good": {
        "- estimate log p(x) with importance sampling and see how far": "the objectives",
        "neither the pictures nor the loss answer a statistician's fi": "the ELBO is a bound (chapter 4)",
        ", and on each data set the mlp that learns its": "names the models scored",
        "test images of each data set we compute the elbo (closed-for": "the method",
        "nats are natural-log units of the model's density over conti": "how to read the unit",
        "the literature reports bits per dimension, lower is better,": "how to read the unit",
        "% of its probability, even for a background pixel that is bl": "algebra of the Gaussian at c = 0.05; the numbers are glued",
        "is itself a lower bound, the reported gap underestimates the": "a consequence of the bound (maths)",
        "grey-level mnist is compared in 8-bit bits per dimension, wh": "a cited result",
        "- the elbo falls short of": "a theorem, in the summary",
        "the probability of an 8-bit image is at most 1, so its cost,": "maths, in the summary",
        "bits per dimension for a bernoulli-decoder vae on binarised ": "an exercise",
        "the best of our models costs": "the best model is picked by the computation; the verdict is glued",
    },
}

# Candidates in chapters whose fix is still to come (issue 19): same form as EXCEPTIONS.
# Each must become glued or asserted, and then leave this list; it should be empty.
PENDING: dict[str, dict[str, str]] = {}

ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "cf.", "vs.", "etc.", "approx.", "Fig.", "Eq.", "resp.")
WILD = "\x00"  # a placeholder: a role, code span, piece of maths or field, standing for one value
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
NEAR_NUMBER = re.compile(r"\b(?:" + "|".join(map(re.escape, NEAR_NUMBER_VERDICTS)) + r")\b", re.IGNORECASE)


class Sentence(NamedTuple):
    """One sentence of prose: ``text`` as written, ``key`` normalised (see :func:`normalise`), in cell ``cell``."""

    notebook: str
    text: str
    key: str
    cell: int = -1


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


def is_candidate(sentence: str, near_glue: bool = True) -> bool:
    """A typed verdict in ``sentence`` (rule 2): a word of :data:`VERDICTS` beside a glued value
    (``near_glue``: in the sentence or the one before or after it) or in a sentence that names a run
    result (:data:`RESULT_WORDS`), or a word of :data:`NEAR_NUMBER_VERDICTS` beside a glued value."""
    typed = typed_text(sentence)
    if VERDICT.search(typed):
        return near_glue or bool(RESULT_WORDS.search(typed))
    return near_glue and bool(NEAR_NUMBER.search(typed))


# A str.format field of a plain literal ("{}", "{std:.2f}"), not a role's "{glue:text}`name`".
FORMAT_FIELD = re.compile(r"\{[\w.\[\]]*(?:![rsa])?(?::[^{}`]*)?\}(?!`)")


def _literal(node: ast.AST) -> str | None:
    """The text of a string literal or f-string (fields as WILD), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return FORMAT_FIELD.sub(WILD, node.value)
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
        sources: list[ast.AST] = [node.msg]  # its own strings ("...".format(x)), then what its names are bound to
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
VALUE = re.compile(f"\\d+(?:[.,]\\d+)*|{WILD}")  # what a placeholder may stand for: a number or a placeholder


def _tokens(norm: str) -> list[str]:
    return TOKEN.findall(norm)


def _same(a: str, b: str) -> bool:
    """Two tokens agree: equal, or a placeholder on one side and one value on the other."""
    return a == b or (WILD in (a, b) and all(VALUE.fullmatch(t) for t in (a, b)))


def asserted(key: str, messages: list[str]) -> bool:
    """Whether one of ``messages`` is the sentence whose normalised text is ``key`` (rule 3)."""
    words = _tokens(key)
    return any(len(tokens) == len(words) and all(map(_same, words, tokens))
               for tokens in (_tokens(normalise(message)) for message in messages))


def candidates(notebook: dict, name: str = "") -> list[Sentence]:
    """Every candidate sentence of a notebook (rule 2), asserted or not."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for paragraph in paragraphs(_source(cell)):
            glued = [bool(GLUE_ROLE.search(text)) for text in paragraph]
            for i, text in enumerate(paragraph):
                if is_candidate(text, any(glued[max(i - 1, 0) : i + 2])):
                    found.append(Sentence(name, text, normalise(text), index))
    return found


def unguarded(notebook: dict, name: str = "", allowed: dict[str, str] | None = None) -> list[Sentence]:
    """Candidates that are neither asserted in a code cell nor matched by a piece of ``allowed``."""
    messages = [m for cell in notebook["cells"] if cell["cell_type"] == "code"
                for m in assert_messages(_source(cell))]
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


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def read_notebook(path: Path) -> dict:
    """The notebook at ``path``; ValueError naming the file if it is not UTF-8 JSON with cells."""
    try:
        notebook = json.loads(path.read_bytes().decode("utf-8"))
        cells = notebook["cells"]
        if not (isinstance(cells, list) and cells and all(isinstance(c["cell_type"], str) for c in cells)):
            raise ValueError("no cells")
        for cell in cells:
            _source(cell)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable notebook ({type(err).__name__}: {err})") from None
    return notebook


def load(folder: Path) -> dict[str, dict]:
    """The chapter notebooks under ``folder`` (``chapters/*.ipynb`` or ``*.ipynb``), by name.

    ValueError naming the file when one cannot be read (see :func:`read_notebook`).
    """
    paths = sorted(folder.glob("chapters/*.ipynb")) or sorted(folder.glob("*.ipynb"))
    return {p.stem: read_notebook(p) for p in paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT,
                        help="a build's jupyter_execute folder (default: the source chapters)")
    args = parser.parse_args(argv)
    try:
        notebooks = load(args.folder)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if not notebooks:
        print(f"no notebooks under {args.folder}", file=sys.stderr)
        return 2
    bad, old = check(notebooks)
    for s in bad:
        print(f"{s.notebook} cell {s.cell}: typed verdict, neither glued nor asserted:\n    {' '.join(s.text.split())}")
    for entry in old:
        print(f"stale entry, no such candidate any more: {entry}")
    print(f"{len(notebooks)} notebooks checked, {len(bad)} unguarded verdict sentences, {len(old)} stale entries")
    return 1 if bad or old else 0


if __name__ == "__main__":
    sys.exit(main())
