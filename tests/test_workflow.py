"""The publishing workflow (.github/workflows/book.yml): valid, and running only the README's commands."""

from __future__ import annotations

import re
import shlex
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
        else:  # the only other commands: the repository check and reading the code version
            assert words[:2] == ["python3", "scripts/set_repository.py"] or "code_version()" in command, command
    assert made == ["data", "test", "book", "browser-test"]
    assert not any("jupyter-book" in c or "pytest" in c for c in run_steps()), "a second build recipe"


def test_every_action_is_pinned_to_a_release():
    uses = re.findall(r"uses: ([\w./-]+)@(\S+)", WORKFLOW.read_text())
    assert uses
    for action, ref in uses:
        assert re.fullmatch(r"v\d+\.\d+\.\d+", ref), f"{action}@{ref} is not a release"


@pytest.mark.parametrize("configured, status", [(False, 1), (True, 0)])
def test_publishing_checks_the_repository_first(tmp_path, configured, status):
    import shutil

    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    if configured:
        text = (tmp_path / "_config.yml").read_text()
        text = re.sub(r'(?m)^  url: .*$', "  url: https://github.com/owner/book", text, count=1)
        (tmp_path / "_config.yml").write_text(text)
    script = ROOT / "scripts" / "set_repository.py"
    code = ("import importlib.util, sys; from pathlib import Path; "
            f"spec = importlib.util.spec_from_file_location('s', {str(script)!r}); m = importlib.util.module_from_spec(spec); "
            f"spec.loader.exec_module(m); sys.exit(m.check(Path({str(tmp_path)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == status
    assert (proc.stderr.count("\n") == 1 and "names no repository" in proc.stderr) if status else not proc.stderr
    first = next(c for c in run_steps() if "set_repository" in c)
    assert "--check" in first
