"""No chapter of the built book types a number that its own cells compute (scripts/unglued_numbers.py).

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
