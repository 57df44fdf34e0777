"""Each chapter's first cell sets up a fresh Jupyter (Colab): install vae_tut, fetch the data.

The cell is run here with ``find_spec`` and ``subprocess.run`` replaced, so the
test sees the commands it would run in an empty environment and in this one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def first_cell(path: Path) -> dict:
    return json.loads(path.read_text())["cells"][0]


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def run_cell(source: str, monkeypatch, present: set[str] | None) -> list[list[str]]:
    """Execute ``source``; modules outside ``present`` look missing (None: all present)."""
    commands: list[list[str]] = []
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if present is not None and name not in present:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(list(cmd)))
    exec(compile(source, "<first cell>", "exec"), {})
    return commands


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_is_the_hidden_install_cell(path):
    cell = first_cell(path)
    assert cell["cell_type"] == "code"
    assert "remove-cell" in cell["metadata"].get("tags", [])
    assert cell["source"] == first_cell(CHAPTERS[0])["source"], "the install cells differ"
    assert f'REPOSITORY = "{repository_url()}"' in "".join(cell["source"]), (
        "the install cell and repository.url in _config.yml disagree: "
        "run python scripts/set_repository.py URL")


def test_install_cell_in_an_empty_environment(monkeypatch):
    source = "".join(first_cell(CHAPTERS[0])["source"])
    commands = run_cell(source, monkeypatch, present=set())
    py = sys.executable
    assert commands == [
        [py, "-m", "pip", "install", "--quiet", "--no-deps", f"vae_tut @ git+{repository_url()}"],
        [py, "-m", "vae_tut", "data"],
        [py, "-m", "pip", "install", "--quiet", "myst-nb", "tqdm", "ipywidgets"],
    ]


def test_install_cell_does_nothing_where_everything_is_installed(monkeypatch):
    source = "".join(first_cell(CHAPTERS[0])["source"])
    assert run_cell(source, monkeypatch, present=None) == []


def test_set_repository_script_rejects_a_bad_url():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "set_repository.py"), "not a url"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
