"""scripts/word_count.py: the chapters' words of prose, per chapter and in total."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_word_count_script_counts_markdown_only(tmp_path, capsys):
    import importlib.util as util

    spec = util.spec_from_file_location("word_count", ROOT / "scripts" / "word_count.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = {"cells": [{"cell_type": "markdown", "source": ["two words\n", "and three"]},
                    {"cell_type": "code", "source": ["not counted at all"]}]}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb))
    assert module.words(tmp_path / "x.ipynb") == 4
    assert module.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(CHAPTERS) + 1 and out[-1].startswith("total")
    assert module.main(["--max", "10"]) == 1


BUDGET = 24_000  # issue 13: the chapters' prose, all notebooks together


def test_chapters_are_within_the_word_budget(capsys):
    import importlib.util as util

    spec = util.spec_from_file_location("word_count", ROOT / "scripts" / "word_count.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    total = sum(module.words(path) for path in CHAPTERS)
    assert total <= BUDGET, f"{total:,} words of prose in chapters/, more than {BUDGET:,}"
    assert module.main(["--max", str(BUDGET)]) == 0
