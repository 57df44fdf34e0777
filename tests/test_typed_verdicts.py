"""scripts/typed_verdicts.py: no chapter types a verdict about run results beside a glued number."""

from __future__ import annotations

import importlib.util as util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = util.spec_from_file_location("typed_verdicts", ROOT / "scripts" / "typed_verdicts.py")
typed_verdicts = util.module_from_spec(spec)
spec.loader.exec_module(typed_verdicts)

SENTENCE = ("The means are wider than the prior (standard deviation {glue:text}`x-std:.2f` per axis "
            "rather than $1$).")


def _nb(markdown: str, *code: str) -> dict:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [markdown]}]
    cells += [{"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": [c], "outputs": []}
              for c in code]
    return {"cells": cells}


def test_a_typed_verdict_beside_a_glued_number_fails():
    found = typed_verdicts.unguarded(_nb("Some words. " + SENTENCE + " More words."), "x")
    assert [s.text for s in found] == [SENTENCE]


def test_the_same_sentence_asserted_passes():
    code = ("if not quick_mode():\n"
            "    assert std > 1, (f\"The means are wider than the prior (standard deviation {std:.2f} \"\n"
            "                     \"per axis rather than 1).\")\n")
    assert typed_verdicts.unguarded(_nb(SENTENCE, code), "x") == []
    # ... but not by an assertion of another sentence, nor by a message outside an assert
    assert typed_verdicts.unguarded(_nb(SENTENCE, 'assert std > 1, "The means are narrower."'), "x")
    assert typed_verdicts.unguarded(_nb(SENTENCE, 'print("The means are wider than the prior '
                                                  '(standard deviation 1.3 per axis rather than 1).")'), "x")


def test_messages_bound_to_names_count():
    for_loop = ('checks = [(std > 1, "The means are wider than the prior (standard deviation {} per axis '
                'rather than 1).")]\nfor ok, sentence in checks:\n    assert ok, sentence\n')
    assert typed_verdicts.unguarded(_nb(SENTENCE, for_loop), "x") == []
    named = 'msg = "the means are *wider* than the prior (standard deviation {} per axis rather than 1)."\n' \
            'assert std > 1, msg\n'
    assert typed_verdicts.unguarded(_nb(SENTENCE, named), "x") == []


def test_the_same_sentence_glued_passes():
    glued = ("The means are {glue:text}`x-verdict` the prior (standard deviation {glue:text}`x-std:.2f` "
             "per axis rather than $1$).")
    assert typed_verdicts.unguarded(_nb(glued), "x") == []


def test_what_is_not_a_candidate():
    # a verdict with no glued number in or beside its sentence; a glued number with no verdict;
    # verdict words inside maths, code, roles and code blocks; directive options
    text = ("PCA is the best linear code.\n\nThe loss is {glue:text}`x:.1f` nats.\n\n"
            "Here $a > b$ is `better` and {eq}`wider`; the value is {glue:text}`y:.1f`.\n\n"
            "```python\nprint('better than', 1.0)\n```\n\n"
            "```{margin} A title\n:class: better\nNo verdict here, {glue:text}`z:.1f`.\n```\n")
    assert typed_verdicts.candidates(_nb(text), "x") == []


def test_a_neighbouring_glued_number_makes_a_candidate():
    text = "The KL is {glue:text}`kl:.1f` nats. The report's KL is far above ours. A new topic."
    assert [s.text for s in typed_verdicts.candidates(_nb(text))] == ["The report's KL is far above ours."]
    assert typed_verdicts.candidates(_nb("The KL is {glue:text}`kl:.1f` nats.\n\nThe report's KL is "
                                         "far above ours.")) == []  # another paragraph


def test_sentences_are_cut_at_sentence_ends_only():
    text = ("Burda et al. train for longer, e.g. 3,280 epochs. A value of 3.32 bits, $x. Y$ and "
            "{glue:text}`a:.1f`. Next.\n- a list item\n- another one")
    assert typed_verdicts.sentences(text) == [
        "Burda et al. train for longer, e.g. 3,280 epochs.",
        "A value of 3.32 bits, $x. Y$ and {glue:text}`a:.1f`.", "Next.", "- a list item", "- another one"]


def test_exceptions_and_stale_entries(monkeypatch):
    nb = _nb(SENTENCE)
    assert typed_verdicts.unguarded(nb, "x", {"the means are wider than the prior": "a test"}) == []
    monkeypatch.setattr(typed_verdicts, "EXCEPTIONS", {"x": {"wider than the prior": "a test"}})
    monkeypatch.setattr(typed_verdicts, "PENDING", {"x": {"no such sentence": "stale"}})
    bad, stale = typed_verdicts.check({"x": nb})
    assert bad == [] and stale == ["PENDING['x']: 'no such sentence'"]


def test_main_reports_and_fails(tmp_path, capsys):
    (tmp_path / "chapters").mkdir()
    path = tmp_path / "chapters" / "x.ipynb"
    path.write_text(json.dumps(_nb(SENTENCE)))
    assert typed_verdicts.main([str(tmp_path)]) == 1
    assert "x: typed verdict" in capsys.readouterr().out
    path.write_text(json.dumps(_nb("Nothing to see: {glue:text}`a:.1f`.")))
    assert typed_verdicts.main([str(tmp_path)]) == 0
    assert typed_verdicts.main([str(tmp_path / "missing")]) == 2


def test_the_chapters_type_no_unguarded_verdict():
    """The check that keeps the book honest: every candidate of chapters/ is glued, asserted or listed.

    typed_verdicts.PENDING lists the candidates still to fix; it should be empty.
    """
    notebooks = typed_verdicts.load(ROOT)
    assert len(notebooks) == len(list((ROOT / "chapters").glob("*.ipynb")))
    bad, stale = typed_verdicts.check(notebooks)
    assert [f"{s.notebook}: {s.text}" for s in bad] == []
    assert stale == []


def test_a_field_in_an_assert_message_cannot_stand_for_the_verdict():
    """An f-string field (or a glued value) stands for a few words, not for the rest of the sentence."""
    code = 'assert std > 1, f"The means are {verdict}."\n'
    assert typed_verdicts.unguarded(_nb(SENTENCE, code), "x")
