"""scripts/unglued_numbers.py: the heuristic that finds typed numbers which a chapter also computes."""

from __future__ import annotations

import importlib.util as util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = util.spec_from_file_location("unglued_numbers", ROOT / "scripts" / "unglued_numbers.py")
unglued_numbers = util.module_from_spec(spec)
spec.loader.exec_module(unglued_numbers)


def _nb(markdown: str, printed: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "source": [markdown]},
                      {"cell_type": "code", "source": ["print(x)"],
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": [printed]}]}]}


def test_typed_number_that_the_outputs_print_is_found():
    nb = _nb("The loss is 309.5 after training.", "final loss 309.4871\n")
    assert unglued_numbers.unglued(nb) == {"309.5"}


def test_glued_maths_code_and_short_numbers_are_not_flagged():
    text = ("Glued: {glue:text}`loss:.1f`; maths $309.5$; code `309.5`; "
            "two digits 0.5 and 1.0; a number the outputs do not print, 123.4.")
    assert unglued_numbers.unglued(_nb(text, "309.4871 0.5 1.0\n")) == set()


def test_exceptions_and_markdown_outputs():
    nb = _nb("The report's KL is 13.4.", "")
    nb["cells"][1]["outputs"] = [{"output_type": "display_data",
                                  "data": {"text/markdown": "| report | 13.4 |"}}]
    assert unglued_numbers.unglued(nb) == {"13.4"}
    assert unglued_numbers.unglued(nb, {"13.4"}) == set()


def test_main_reports_and_fails(tmp_path, capsys):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "x.ipynb").write_text(json.dumps(_nb("It is 42.25 here.", "42.25\n")))
    assert unglued_numbers.main([str(tmp_path)]) == 1
    assert "x: typed numbers that its outputs compute: 42.25" in capsys.readouterr().out
    (tmp_path / "chapters" / "x.ipynb").write_text(json.dumps(_nb("Nothing typed.", "42.25\n")))
    assert unglued_numbers.main([str(tmp_path)]) == 0
    assert unglued_numbers.main([str(tmp_path / "missing")]) == 2


BROKEN = {"truncated": b'{"cells": [{"cell_type": "mark', "not-utf8": b"\xff\xfe not utf-8", "no-cells": b"{}",
          "empty-cells": b'{"cells": []}', "cell-without-type": b'{"cells": [{"source": "x"}]}',
          "not-a-dict": b"[1, 2]"}


@pytest.mark.parametrize("content", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_notebook_is_one_line_naming_it(tmp_path, capsys, content):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "a.ipynb").write_text(json.dumps(_nb("Nothing typed.", "42.25\n")))
    (tmp_path / "chapters" / "b.ipynb").write_bytes(content)
    assert unglued_numbers.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "chapters" / "b.ipynb") in err and "Traceback" not in err


def test_a_missing_or_empty_chapters_folder_is_one_line(tmp_path, capsys):
    assert unglued_numbers.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "chapters").mkdir()
    assert unglued_numbers.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and str(tmp_path / "missing") in err[0] and str(tmp_path) in err[1]
