"""scripts/typed_verdicts.py: no chapter types a verdict about run results beside a glued number."""

from __future__ import annotations

import importlib.util as util
import json
from pathlib import Path

import pytest

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
    # a glued number with no verdict; verdict words inside maths, code, roles and code blocks; directive options
    text = ("The loss is {glue:text}`x:.1f` nats.\n\n"
            "Here $a > b$ is `better` and {eq}`wider`; the value is {glue:text}`y:.1f`.\n\n"
            "```python\nprint('better than', 1.0)\n```\n\n"
            "```{margin} A title\n:class: better\nNo verdict here, {glue:text}`z:.1f`.\n```\n")
    assert typed_verdicts.candidates(_nb(text), "x") == []


def test_a_verdict_is_a_candidate_with_or_without_a_number_nearby():
    text = "The KL is {glue:text}`kl:.1f` nats. The report's KL is far above ours. A new topic."
    assert [s.text for s in typed_verdicts.candidates(_nb(text))] == ["The report's KL is far above ours."]
    assert [s.text for s in typed_verdicts.candidates(_nb("Some prose.\n\nThe CNN beats the MLP."))] == [
        "The CNN beats the MLP."]
    found = typed_verdicts.candidates(_nb("A title.\n\nThe MLP is the best model."), "x")
    assert [(s.notebook, s.cell, s.text) for s in found] == [("x", 0, "The MLP is the best model.")]
    # with no glued value near it, a verdict word counts only in a sentence about run results
    assert typed_verdicts.candidates(_nb("A title.\n\nPCA is the best linear code.")) == []


@pytest.mark.parametrize("sentence", [
    "All runs end near the same loss.", "None of the seeds collapses.", "Only the CNN keeps its detail.",
    "The ranking changes little.", "Most dimensions are inactive.", "The curves mostly overlap.",
    "The two histograms overlap.", "The ELBO tracks the exact bound.", "A Gaussian fits the codes.",
    "Our run reproduces the report.", "The samples look sensible.", "The default does well.",
    "The CNN is faster.", "The MLP is slower.", "The gap is several times larger."])
def test_the_wider_verdict_words_make_candidates(sentence):
    beside_a_number = f"{sentence} The value is {{glue:text}}`v:.1f`."
    assert [s.text for s in typed_verdicts.candidates(_nb(beside_a_number))][:1] == [sentence]


@pytest.mark.parametrize("sentence", ["The same three lines do it.", "All pixel values are non-negative.",
                                      "Only a non-linear code can follow the curve."])
def test_everyday_words_count_only_beside_a_number(sentence):
    assert typed_verdicts.candidates(_nb(sentence)) == []
    assert [s.text for s in typed_verdicts.candidates(_nb(f"{sentence} It is {{glue:text}}`v:.1f`."))][:1] == [
        sentence]


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
    assert "x cell 0: typed verdict" in capsys.readouterr().out
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


def test_a_sentence_equal_to_its_assert_message_passes():
    """Each placeholder stands for one value: a glued role for a field or a number, maths for a number."""
    sentence = "At $z = 20$ the CNN is ahead by {glue:text}`gap:.1f` nats on {glue:text}`seeds:d` seeds."
    for message in ('f"At $z = 20$ the CNN is ahead by {gap:.1f} nats on {n} seeds."',
                    '"At $z = 20$ the CNN is ahead by {:.1f} nats on {} seeds.".format(gap, n)',
                    '"At $z = 20$ the CNN is ahead by {glue:text}`gap:.1f` nats on 3 seeds."'):
        assert typed_verdicts.unguarded(_nb(sentence, f"assert gap > 0, {message}\n"), "x") == [], message


@pytest.mark.parametrize("message", [
    'f"At $z = 20$ the CNN is ahead by {gap:.1f} nats on {n} seeds, and more."',  # a longer message
    'f"Indeed at $z = 20$ the CNN is ahead by {gap:.1f} nats on {n} seeds."',
    'f"At $z = 20$ the CNN is {verdict} by {gap:.1f} nats on {n} seeds."',  # a field for a word
    'f"At $z = 20$ the CNN is ahead by {gap:.1f} {unit} on {n} seeds."',
    'f"At $z = 20$ the CNN is ahead by {gap:.1f} nats on {n} {what}."'])
def test_a_placeholder_stands_for_one_value_never_for_words(message):
    sentence = "At $z = 20$ the CNN is ahead by {glue:text}`gap:.1f` nats on {glue:text}`seeds:d` seeds."
    assert typed_verdicts.unguarded(_nb(sentence, f"assert gap > 0, {message}\n"), "x")


# Made-up verdicts that the old matching let through (a placeholder absorbed up to four words either
# side), each with the unrelated assert message of its chapter that "asserted" it.
PLANTED = {
    "09_balancing_c": (
        "Learned $c$ beats every fixed $c$ ({glue:text}`balance-learned-c-mnist`).",
        'assert rd[lo]["rate"] > rd[hi]["rate"], (\n'
        '    "From $c = 1$ to $c = 0.0001$ the rate grows about {glue:text}`balance-rate-ratio:.0f`-fold while the "\n'
        '    "distortion falls by only {glue:text}`balance-dist-gain:.0f` %: two latent dimensions cannot "\n'
        '    "carry much more detail.")\n'),
    "08_latent_size": (
        "At $z = 20$ the CNN is ahead: {glue:text}`latent-off-cnn-z20`.",
        'ZEROING_SENTENCE = ("Where there are inactive dimensions, wiping them out changes the decoded images by '
        'at most "\n    "{glue:text}`latent-zeroing-max:.1f` % of the difference between two random samples: the "\n'
        '    "decoder has learnt to look past them.")\nassert max(zeroing.values()) < 0.05, ZEROING_SENTENCE\n'),
    "10_how_good": (
        "{glue:text}`howgood-bits-best` beats independent pixels.",
        'for name, res in results.items():\n'
        '    assert best >= lower, f"{name}: the importance-weighted estimate fell below the ELBO"\n'
        '    assert abs(res.iwae[1] - lower) < 1, f"{name}: L_1 and the ELBO disagree"\n'
        '    assert all(a <= b for a, b in zip(values, values[1:])), f"{name}: L_k should not fall as k grows"\n'),
}


@pytest.mark.parametrize("chapter", PLANTED)
def test_a_planted_verdict_is_not_asserted_by_an_unrelated_message(tmp_path, capsys, chapter):
    sentence, code = PLANTED[chapter]
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / f"{chapter}.ipynb").write_text(json.dumps(_nb("Some prose.\n\n" + sentence, code)))
    assert typed_verdicts.main([str(tmp_path)]) == 1
    assert f"{chapter} cell 0: typed verdict, neither glued nor asserted:\n    {sentence}\n" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b'{"cells": [{"cell_type": "mark', b"\xff\xfe not utf-8", b"{}",
                                     b'{"cells": []}', b'{"cells": [{"source": "x"}]}', b"[1, 2]"],
                         ids=["truncated", "not-utf8", "no-cells", "empty-cells", "cell-without-type", "not-a-dict"])
def test_a_broken_notebook_is_one_line_naming_it(tmp_path, capsys, content):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "a.ipynb").write_text(json.dumps(_nb("Fine.")))
    (tmp_path / "chapters" / "b.ipynb").write_bytes(content)
    assert typed_verdicts.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "chapters" / "b.ipynb") in err and "Traceback" not in err


def test_a_missing_or_empty_chapters_folder_is_one_line(tmp_path, capsys):
    assert typed_verdicts.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "chapters").mkdir()
    assert typed_verdicts.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"no notebooks under {tmp_path / 'missing'}", f"no notebooks under {tmp_path}"]
