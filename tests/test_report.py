"""The table and quick-mode helpers of vae_tut.report that every chapter's plumbing uses."""

from __future__ import annotations

import IPython.display

from vae_tut.experiments import QUICK_EPOCHS, QUICK_TRAIN_SIZE
from vae_tut.report import markdown_table, quick_banner, quick_tag, show_table, wrap


def test_quick_mode_is_announced_only_in_quick_mode(monkeypatch):
    assert quick_banner() == quick_tag() == "" and markdown_table(["a"], [[1]]) == "| a   |\n|-----|\n| 1   |"
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    plural = "s" if QUICK_EPOCHS != 1 else ""
    banner = f"**QUICK MODE**: models trained {QUICK_EPOCHS} epoch{plural} on {QUICK_TRAIN_SIZE:,} images"
    tail = "smoke tests, not comparable with the report."
    assert quick_banner() == f"{banner}; {tail}"
    assert quick_banner("chapter 7's grid") == f"{banner}; chapter 7's grid; {tail}"
    assert quick_tag() == " [QUICK MODE]"
    assert markdown_table(["a"], [[1]], note="Seeds 0-2.").startswith(f"{banner}; {tail} Seeds 0-2.\n\n| a ")
    assert markdown_table(["a"], [[1]], quick=False) == "| a   |\n|-----|\n| 1   |"


def test_show_table_displays_the_markdown_and_wrap_breaks_titles(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    show_table(["run", "total"], [["mlp", 1.5]], note="Lower is better.")
    assert [obj.data for obj in shown] == [markdown_table(["run", "total"], [["mlp", 1.5]], "Lower is better.")]
    assert wrap("MLP on Fashion-MNIST, z = 2", 12) == "MLP on\nFashion-\nMNIST, z = 2"
