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


def repository() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]


def configured(source: str, url: str, ref: str) -> str:
    """The first cell as scripts/set_repository.py would write it."""
    return (source.replace('REPOSITORY = ""', f'REPOSITORY = "{url}"', 1)
            .replace('RELEASE = ""', f'RELEASE = "{ref}"', 1))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_is_the_hidden_install_cell(path):
    cell = first_cell(path)
    assert cell["cell_type"] == "code"
    assert "remove-cell" in cell["metadata"].get("tags", [])
    assert cell["source"] == first_cell(CHAPTERS[0])["source"], "the install cells differ"
    source = "".join(cell["source"])
    assert f'REPOSITORY = "{repository()["url"]}"' in source and \
        f'RELEASE = "{repository()["branch"]}"' in source, (
            "the install cell and repository in _config.yml disagree: "
            "run python scripts/set_repository.py URL REF")


def test_unconfigured_cell_refuses_to_install(monkeypatch):
    source = "".join(first_cell(CHAPTERS[0])["source"])
    if 'REPOSITORY = ""' not in source:
        pytest.skip("this copy of the book has its repository set")
    commands: list = []
    with pytest.raises(Exception) as caught:
        commands = run_cell(source, monkeypatch, present=set())
    assert type(caught.value).__name__ == "SetupError" and commands == []
    shown = caught.value._render_traceback_()
    assert len(shown) == 1 and "pip install -e ." in shown[0] and "git+" not in shown[0]
    assert "http" not in source.split("class SetupError")[0].split("REPOSITORY =")[1].split("\n")[0]


def test_configured_cell_installs_the_release_only(monkeypatch):
    source = configured("".join(first_cell(CHAPTERS[0])["source"]), "https://github.com/owner/book", "v1.2")
    commands = run_cell(source, monkeypatch, present=set())
    py = sys.executable
    assert commands == [
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "vae_tut @ git+https://github.com/owner/book@v1.2"],
        [py, "-m", "pip", "install", "--quiet", "myst-nb", "tqdm", "ipywidgets"],
    ]


def test_install_cell_does_nothing_where_everything_is_installed(monkeypatch):
    source = "".join(first_cell(CHAPTERS[0])["source"])
    assert run_cell(source, monkeypatch, present=None) == []


def _set_repository():
    import importlib.util as util

    spec = util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _book(tmp_path: Path) -> Path:
    """A copy of the book's _config.yml, chapters and package setting vae_tut/published.json."""
    import shutil

    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters", ignore=shutil.ignore_patterns("_build*"))
    (tmp_path / "vae_tut").mkdir()
    shutil.copy(ROOT / "vae_tut" / "published.json", tmp_path / "vae_tut" / "published.json")
    return tmp_path


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_set_repository_writes_config_and_every_cell(tmp_path):
    _book(tmp_path)
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 0
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert config["repository"] == {"url": "https://github.com/owner/book", "branch": "v1.2", "path_to_book": ""}
    assert config["launch_buttons"]["colab_url"] and config["html"]["use_repository_button"] is True
    for path in sorted((tmp_path / "chapters").glob("*.ipynb")):
        source = "".join(first_cell(path)["source"])
        assert 'REPOSITORY = "https://github.com/owner/book"' in source and 'RELEASE = "v1.2"' in source
    published = json.loads((tmp_path / "vae_tut" / "published.json").read_text())
    assert published == {"runs_url": "https://owner.github.io/book/runs/"}  # the Pages site's runs/


@pytest.mark.parametrize("url, runs", [
    ("https://github.com/My-Org2/my.book_1-x", "https://my-org2.github.io/my.book_1-x/runs/"),
    ("https://github.com/Owner/owner.github.io", "https://owner.github.io/runs/")])
def test_set_repository_names_the_pages_site_of_the_runs(tmp_path, url, runs):
    assert _set_repository().main([url, "v1"], root=_book(tmp_path)) == 0
    assert json.loads((tmp_path / "vae_tut" / "published.json").read_text()) == {"runs_url": runs}
    assert _set_repository().main(["--check"], root=tmp_path) == 0


def test_set_repository_without_the_package_setting_changes_nothing(tmp_path, capsys):
    (_book(tmp_path) / "vae_tut" / "published.json").write_text("[]")
    before = _files(tmp_path)
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "vae_tut" / "published.json") in err, err
    assert _files(tmp_path) == before


@pytest.mark.parametrize("argv", [["not a url", "v1"], ["https://github.com/owner/book"],
                                  ["https://github.com/owner/book", "main; rm -rf /"]])
def test_set_repository_script_rejects_bad_input(argv):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "set_repository.py"), *argv],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage:")


@pytest.mark.parametrize("url, ref", [
    ("https://github.com/owner/book\n", "v1.2"), ("https://github.com/owner/book", "v1.2\n"),  # $ matched before \n
    ("https://github.com/../..", "v1"), ("https://github.com/owner/..", "v1"), ("https://github.com/owner/.", "v1"),
    ("https://github.com/-owner/book", "v1"), ("https://github.com/ow_ner/book", "v1"),
    ("https://github.com/owner/bo/ok", "v1"), ("https://github.com/owner/book/", "v1"),
    ("http://github.com/owner/book", "v1"), (" https://github.com/owner/book", "v1"),
    ("https://github.com/owner/book", "v1..2"), ("https://github.com/owner/book", "v1."),
    ("https://github.com/owner/book", "v1.lock"), ("https://github.com/owner/book", "-v1"),
    ("https://github.com/owner/book", 'v1"')])
def test_set_repository_validates_the_whole_url_and_release(tmp_path, capsys, url, ref):
    before = _files(_book(tmp_path))
    assert _set_repository().main([url, ref], root=tmp_path) == 2
    assert capsys.readouterr().err.startswith("usage:")
    assert _files(tmp_path) == before


def test_set_repository_accepts_github_names(tmp_path):
    assert _set_repository().main(["https://github.com/my-org2/my.book_1-x", "1.10"], root=_book(tmp_path)) == 0
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert config["repository"]["url"] == "https://github.com/my-org2/my.book_1-x"
    assert config["repository"]["branch"] == "1.10"  # a string, not the number 1.1
    for path in sorted((tmp_path / "chapters").glob("*.ipynb")):
        compile("".join(first_cell(path)["source"]), str(path), "exec")
    assert _set_repository().main(["--check"], root=tmp_path) == 0


def _break_truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _break_no_release(path: Path) -> None:
    notebook = json.loads(path.read_text())
    notebook["cells"][0]["source"] = [line for line in notebook["cells"][0]["source"] if not line.startswith("RELEASE")]
    path.write_text(json.dumps(notebook))


def _break_no_cells(path: Path) -> None:
    path.write_text('{"cells": []}')


def _break_markdown_first(path: Path) -> None:
    notebook = json.loads(path.read_text())
    notebook["cells"][0]["cell_type"] = "markdown"
    path.write_text(json.dumps(notebook))


def _break_not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff" + path.read_bytes())


@pytest.mark.parametrize("breaks", [_break_truncated, _break_no_release, _break_no_cells, _break_markdown_first,
                                    _break_not_utf8], ids=lambda f: f.__name__[7:])
def test_one_malformed_chapter_changes_nothing(tmp_path, capsys, breaks):
    """Every chapter is checked before anything is written: no half-configured book."""
    chapter = sorted((_book(tmp_path) / "chapters").glob("*.ipynb"))[5]
    breaks(chapter)
    before = _files(tmp_path)
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(chapter) in err and "Traceback" not in err, err
    assert _files(tmp_path) == before


def test_set_repository_without_config_or_chapters_is_one_line(tmp_path, capsys):
    set_repository = _set_repository()
    assert set_repository.main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 1
    assert capsys.readouterr().err == f"{tmp_path / '_config.yml'}: cannot be read " \
        f"(FileNotFoundError: [Errno 2] No such file or directory: {str(tmp_path / '_config.yml')!r})\n"
    _book(tmp_path)
    for path in (tmp_path / "chapters").glob("*.ipynb"):
        path.unlink()
    before = _files(tmp_path)
    assert set_repository.main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'chapters'}: no chapter notebooks\n"
    assert _files(tmp_path) == before


def test_install_cell_stops_with_one_line_when_the_data_cannot_be_had(monkeypatch, tmp_path):
    from vae_tut import data

    monkeypatch.setenv("VAE_TUT_DATA", str(tmp_path))
    monkeypatch.setenv("VAE_TUT_NO_DOWNLOAD", "1")
    monkeypatch.setattr(data, "local_sources", lambda name: [])
    source = "".join(first_cell(CHAPTERS[0])["source"])
    with pytest.raises(Exception) as caught:
        run_cell(source, monkeypatch, present=None)
    shown = caught.value._render_traceback_()
    assert len(shown) == 1 and "Get it in one of three ways" in shown[0]

