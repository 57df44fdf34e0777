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

spec = util.spec_from_file_location("unglued_numbers", ROOT / "scripts" / "unglued_numbers.py")
unglued_numbers = util.module_from_spec(spec)
spec.loader.exec_module(unglued_numbers)


def test_no_chapter_types_a_number_it_computes():
    book = book_dir()
    if book is None:
        pytest.fail("no built book: run `make book` or `make book-quick` first")
    executed = sorted((book.parent / "jupyter_execute" / "chapters").glob("*.ipynb"))
    assert executed, f"no executed notebooks beside {book}"
    found = {path.stem: unglued_numbers.unglued(json.loads(path.read_text()),
                                                unglued_numbers.EXCEPTIONS.get(path.stem, set()))
             for path in executed}
    assert {name: hits for name, hits in found.items() if hits} == {}


verdict_spec = util.spec_from_file_location("typed_verdicts", ROOT / "scripts" / "typed_verdicts.py")
typed_verdicts = util.module_from_spec(verdict_spec)
verdict_spec.loader.exec_module(typed_verdicts)


def test_no_chapter_of_the_build_types_an_unguarded_verdict():
    """scripts/typed_verdicts.py on the notebooks as the build executed them (see its docstring)."""
    book = book_dir()
    if book is None:
        pytest.fail("no built book: run `make book` or `make book-quick` first")
    executed = book.parent / "jupyter_execute"
    notebooks = typed_verdicts.load(executed)
    assert notebooks, f"no executed notebooks beside {book}"
    bad, stale = typed_verdicts.check(notebooks)
    assert [f"{s.notebook}: {s.text}" for s in bad] == []
    assert stale == []
