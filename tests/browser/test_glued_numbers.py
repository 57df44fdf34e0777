"""No chapter of the built book types a number that its own cells compute (scripts/unglued_numbers.py),
nor a verdict about run results beside a glued number that is neither glued nor asserted
(scripts/typed_verdicts.py).

Runs with the browser tests (``make browser-test``) because it needs a built book: the executed
notebooks in ``jupyter_execute`` beside the HTML.
"""

from __future__ import annotations

import importlib.util as util
import json

import pytest
from test_book_pages import ROOT, book_dir

pytestmark = pytest.mark.browser


def _script(name: str):
    """One of scripts/*.py as a module."""
    spec = util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executed():
    """The folder of notebooks as the build executed them, beside the built book's HTML."""
    book = book_dir()
    if book is None:
        pytest.fail("no built book: run `make book` or `make book-quick` first")
    return book.parent / "jupyter_execute"


def test_no_chapter_types_a_number_it_computes():
    unglued_numbers = _script("unglued_numbers")
    executed = sorted((_executed() / "chapters").glob("*.ipynb"))
    assert executed, "no executed notebooks beside the built book"
    found = {path.stem: unglued_numbers.unglued(json.loads(path.read_text()),
                                                unglued_numbers.EXCEPTIONS.get(path.stem, set()))
             for path in executed}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_no_chapter_of_the_build_types_an_unguarded_verdict():
    """scripts/typed_verdicts.py on the notebooks as the build executed them (see its docstring)."""
    typed_verdicts = _script("typed_verdicts")
    notebooks = typed_verdicts.load(_executed())
    assert notebooks, "no executed notebooks beside the built book"
    bad, stale = typed_verdicts.check(notebooks)
    assert [f"{s.notebook}: {s.text}" for s in bad] == []
    assert stale == []
