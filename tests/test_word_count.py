"""scripts/word_count.py: the chapters' words of prose, per chapter and in total."""

from __future__ import annotations

import importlib.util as util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _word_count():
    spec = util.spec_from_file_location("word_count", ROOT / "scripts" / "word_count.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_word_count_script_counts_markdown_only(tmp_path, capsys):
    module = _word_count()
    nb = {"cells": [{"cell_type": "markdown", "source": ["two words\n", "and three"]},
                    {"cell_type": "code", "source": ["not counted at all"]}]}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb))
    assert module.words(tmp_path / "x.ipynb") == 4
    assert module.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(CHAPTERS) + 1 and out[-1].startswith("total")
    assert module.main(["--max", "10"]) == 1


BUDGET = 23_000  # issue 30: the chapters' prose, all notebooks together


def test_chapters_are_within_the_word_budget(capsys):
    module = _word_count()
    total = sum(module.words(path) for path in CHAPTERS)
    assert total <= BUDGET, f"{total:,} words of prose in chapters/, more than {BUDGET:,}"
    assert module.main(["--max", str(BUDGET)]) == 0


BROKEN = {"truncated": b'{"cells": [{"cell_type": "mark', "not-utf8": b"\xff\xfe not utf-8", "no-cells": b"{}",
          "empty-cells": b'{"cells": []}', "cell-without-type": b'{"cells": [{"source": "x"}]}',
          "not-a-dict": b"[1, 2]"}


@pytest.mark.parametrize("content", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_notebook_is_one_line_naming_it(tmp_path, capsys, content):
    module = _word_count()
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "a.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "x"}]}))
    (tmp_path / "chapters" / "b.ipynb").write_bytes(content)
    assert module.main([], root=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "chapters" / "b.ipynb") in err and "Traceback" not in err


def test_a_missing_or_empty_chapters_folder_is_one_line(tmp_path, capsys):
    module = _word_count()
    assert module.main([], root=tmp_path) == 2
    (tmp_path / "chapters").mkdir()
    assert module.main([], root=tmp_path) == 2
    assert capsys.readouterr().err.splitlines() == [f"no notebooks in {tmp_path / 'chapters'}"] * 2
