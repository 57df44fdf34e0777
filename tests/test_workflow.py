"""The publishing workflow (.github/workflows/book.yml): valid, and running only the README's commands."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def run_steps() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def test_workflow_validates_against_the_github_schema():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_builds_with_the_readme_commands_only():
    readme_targets = set(re.findall(r"\bmake ([\w-]+)", (ROOT / "README.md").read_text()))
    made = []
    for command in run_steps():
        words = shlex.split(command.splitlines()[0])
        if words[0] == "make":
            assert words[1] in readme_targets, f"make {words[1]} is not a README command"
            made.append(words[1])
        else:  # the only other commands: the repository check, reading the code version, publishing the runs
            assert (words[:2] == ["python3", "scripts/set_repository.py"] or "code_version()" in command
                    or words == PUBLISH_RUNS), command
    assert made == ["data", "test", "book", "browser-test"]
    assert not any("jupyter-book" in c or "pytest" in c for c in run_steps()), "a second build recipe"


PUBLISH_RUNS = [".venv/bin/python", "-m", "vae_tut", "publish", "_build/html/runs"]


def test_workflow_publishes_the_runs_with_the_pages():
    """After the full book is built and tested, the run cache goes to the site's runs/ (the URL
    scripts/set_repository.py writes into vae_tut/published.json), before the pages are uploaded."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]["steps"]
    names = [step.get("run", step.get("uses", "")) for step in steps]
    publish = next(i for i, run in enumerate(names) if run.split() == PUBLISH_RUNS)
    assert names.index("make book") < publish
    assert publish < next(i for i, uses in enumerate(names) if uses.startswith("actions/upload-pages-artifact"))


def test_every_action_is_pinned_to_a_release():
    uses = re.findall(r"uses: ([\w./-]+)@(\S+)", WORKFLOW.read_text())
    assert uses
    for action, ref in uses:
        assert re.fullmatch(r"v\d+\.\d+\.\d+", ref), f"{action}@{ref} is not a release"


def _set_repository():
    import importlib.util as util

    spec = util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _book(tmp_path: Path) -> Path:
    """A copy of the book's _config.yml, chapters and package setting vae_tut/published.json."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters", ignore=shutil.ignore_patterns("_build*"))
    (tmp_path / "vae_tut").mkdir()
    shutil.copy(ROOT / "vae_tut" / "published.json", tmp_path / "vae_tut" / "published.json")
    return tmp_path


@pytest.mark.parametrize("configured, status", [(False, 1), (True, 0)])
def test_publishing_checks_the_repository_first(tmp_path, configured, status):
    _book(tmp_path)
    if configured:
        assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=tmp_path) == 0
    script = ROOT / "scripts" / "set_repository.py"
    code = ("import importlib.util, sys; from pathlib import Path; "
            f"spec = importlib.util.spec_from_file_location('s', {str(script)!r}); "
            "m = importlib.util.module_from_spec(spec); "
            f"spec.loader.exec_module(m); sys.exit(m.check(Path({str(tmp_path)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == status
    assert (proc.stderr.count("\n") == 1 and "names no repository" in proc.stderr) if status else not proc.stderr
    first = next(c for c in run_steps() if "set_repository" in c)
    assert "--check" in first


def _check_fails(tmp_path, capsys, naming: str) -> None:
    assert _set_repository().main(["--check"], root=tmp_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and naming in err and "Traceback" not in err, err


def test_check_without_config_is_one_line(tmp_path, capsys):
    _check_fails(tmp_path, capsys, str(tmp_path / "_config.yml"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_check_parses_the_config_block(tmp_path, capsys):
    set_repository = _set_repository()
    assert set_repository.main(["https://github.com/owner/book", "v1.2"], root=_book(tmp_path)) == 0
    capsys.readouterr()
    config = tmp_path / "_config.yml"
    good = config.read_text()
    # what the old script wrote for a URL ending in a newline; a hand-edited block; an invalid URL
    for old, new in (('url: "https://github.com/owner/book"', 'url: "https://github.com/owner/book\n"'),
                     ("  colab_url:", "  colab_url: [\n  x:"),
                     ("owner/book", "../..")):
        config.write_text(good)
        _edit(config, old, new)
        _check_fails(tmp_path, capsys, str(config))


@pytest.mark.parametrize("old, new", [
    ('REPOSITORY = "https://github.com/owner/book"', 'REPOSITORY = "https://github.com/owner/book\n"'),
    ('REPOSITORY = "https://github.com/owner/book"', 'REPOSITORY = "https://github.com/owner/other"'),
    ('RELEASE = "v1.2"', 'RELEASE = "v1.3"'),
    ("import importlib\n", "import importlib (\n")], ids=["newline", "other-url", "other-release", "syntax"])
def test_check_parses_every_first_cell(tmp_path, capsys, old, new):
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=_book(tmp_path)) == 0
    capsys.readouterr()
    chapter = sorted((tmp_path / "chapters").glob("*.ipynb"))[5]
    notebook = json.loads(chapter.read_text())
    source = "".join(notebook["cells"][0]["source"])
    assert old in source
    notebook["cells"][0]["source"] = source.replace(old, new, 1)
    chapter.write_text(json.dumps(notebook))
    _check_fails(tmp_path, capsys, str(chapter))


@pytest.mark.parametrize("text", ['{"runs_url": ""}', '{"runs_url": "https://other.github.io/book/runs/"}', "{"],
                         ids=["empty", "other-site", "not-json"])
def test_check_needs_the_runs_url_of_the_pages_site(tmp_path, capsys, text):
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=_book(tmp_path)) == 0
    capsys.readouterr()
    published = tmp_path / "vae_tut" / "published.json"
    assert json.loads(published.read_text()) == {"runs_url": "https://owner.github.io/book/runs/"}
    published.write_text(text)
    _check_fails(tmp_path, capsys, str(published))


def test_check_needs_readable_chapters(tmp_path, capsys):
    assert _set_repository().main(["https://github.com/owner/book", "v1.2"], root=_book(tmp_path)) == 0
    capsys.readouterr()
    chapter = sorted((tmp_path / "chapters").glob("*.ipynb"))[3]
    chapter.write_bytes(chapter.read_bytes()[:100])
    _check_fails(tmp_path, capsys, str(chapter))
    for path in (tmp_path / "chapters").glob("*.ipynb"):
        path.unlink()
    _check_fails(tmp_path, capsys, str(tmp_path / "chapters"))
