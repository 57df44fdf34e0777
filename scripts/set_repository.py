"""Point the book at its public repository and release: ``python scripts/set_repository.py URL REF``.

Until this is run the book names no repository: no launch or repository buttons, and each
chapter's first cell refuses to install anything (a notebook must never install code from a
repository nobody here controls). ``URL`` is ``https://github.com/OWNER/NAME``; ``REF`` is the
tag or commit of the book's release, so that a chapter opened in Colab installs exactly the
package that built it, never a moving branch. The script rewrites the marked block of
``_config.yml`` (launch buttons for Colab and Binder at ``REF``, the repository and issues
buttons), the ``REPOSITORY``/``RELEASE`` lines of every chapter's first cell, and the package
setting ``vae_tut/published.json``: ``runs_url`` is the book's GitHub Pages site plus ``runs/``
(``https://OWNER.github.io/NAME/runs/``), where the workflow publishes the trained runs that a
reader's build fetches instead of training (``vae_tut/remote.py``).
``tests/test_install_cell.py`` fails if they ever disagree. Every chapter is checked before
any file is written, and either all files are rewritten or none.

``--check`` (run before publishing) exits with status 1 and one line unless the block is as this
script writes it for a valid URL and REF, every chapter's first cell compiles and names the same,
and ``vae_tut/published.json`` names the same Pages site.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# GitHub's names: an owner of letters, digits and hyphens, not starting with one; a repository
# of letters, digits, '.', '_' and '-', other than '.' and '..'. Matched whole (re.fullmatch).
URL_RE = re.compile(r"https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*/(?!\.\.?\Z)[A-Za-z0-9._-]+")
REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a tag or commit; see valid_ref for git's other rules
BLOCK_RE = re.compile(r"(?ms)^# >>> repository.*?^# <<< repository$")
PUBLISHED = Path("vae_tut") / "published.json"  # the package setting: where the published runs are
USAGE = ("usage: python scripts/set_repository.py https://github.com/OWNER/NAME TAG_OR_COMMIT\n"
         "       python scripts/set_repository.py --check")


class Problem(Exception):
    """One line for stderr, naming the file at fault."""


def valid_url(url: str) -> bool:
    return URL_RE.fullmatch(url) is not None


def valid_ref(ref: str) -> bool:
    return REF_RE.fullmatch(ref) is not None and ".." not in ref and not ref.endswith((".", ".lock"))


def config_block(url: str, ref: str) -> str:
    """The ``_config.yml`` block for a configured repository (values quoted: a tag such as 1.10 stays a string)."""
    return f"""# >>> repository (written by scripts/set_repository.py)
repository:
  url: "{url}"
  branch: "{ref}"
  path_to_book: ""
launch_buttons:
  notebook_interface: classic
  colab_url: https://colab.research.google.com
  binderhub_url: https://mybinder.org
html:
  use_repository_button: true
  use_issues_button: true
# <<< repository"""


def runs_url(url: str) -> str:
    """The published runs of the repository ``url``: its GitHub Pages site (the owner's host in lower
    case; a repository named OWNER.github.io is served at the root) plus ``runs/``."""
    owner, name = url.split("/")[3:5]
    host = f"{owner.lower()}.github.io"
    return f"https://{host}/runs/" if name.lower() == host else f"https://{host}/{name}/runs/"


def published_text(url: str) -> str:
    """The text of ``vae_tut/published.json`` for the repository ``url``."""
    return json.dumps({"runs_url": runs_url(url)}, indent=1) + "\n"


def published_url(root: Path) -> str:
    """The ``runs_url`` that ``vae_tut/published.json`` holds now, or a Problem naming the file."""
    path = root / PUBLISHED
    try:
        value = json.loads(read(path))["runs_url"]
        if not isinstance(value, str):
            raise TypeError("runs_url is not a string")
    except (ValueError, KeyError, TypeError) as err:
        raise Problem(f'{path}: not {{"runs_url": "..."}} ({type(err).__name__}: {err})') from None
    return value


def read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, ValueError) as err:
        raise Problem(f"{path}: cannot be read ({type(err).__name__}: {err})") from None


def chapters(root: Path) -> list[Path]:
    paths = sorted((root / "chapters").glob("*.ipynb"))
    if not paths:
        raise Problem(f"{root / 'chapters'}: no chapter notebooks")
    return paths


def first_cell(path: Path) -> tuple[dict, dict, str]:
    """A chapter's notebook, its first cell and that cell's source, or a Problem naming the file."""
    try:
        notebook = json.loads(read(path))
        cell = notebook["cells"][0]
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] != "code":
            raise ValueError("the first cell is not a code cell")
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise Problem(f"{path}: not a chapter notebook with a first code cell ({type(err).__name__}: {err})") from None
    return notebook, cell, source


def names_in(path: Path, source: str) -> dict[str, object]:
    """The ``REPOSITORY`` and ``RELEASE`` that a first cell assigns, once it compiles, or a Problem."""
    try:
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as err:
        raise Problem(f"{path}: the first cell does not compile ({type(err).__name__}: {err})") from None
    return {target.id: node.value.value for node in ast.parse(source).body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) for target in node.targets
            if isinstance(target, ast.Name) and target.id in ("REPOSITORY", "RELEASE")}


def configured(root: Path) -> tuple[str, str] | None:
    """The URL and REF of ``_config.yml``'s block as this script writes it; None while the url is empty."""
    config = root / "_config.yml"
    block = BLOCK_RE.search(read(config))
    if block is None:
        raise Problem(f"{config}: no '# >>> repository' block")
    url, ref = (m.group(1) if (m := re.search(rf'(?m)^  {key}: "?([^"\n]*)"?$', block.group(0))) else ""
                for key in ("url", "branch"))
    if not url:
        return None
    if not (valid_url(url) and valid_ref(ref) and block.group(0) == config_block(url, ref)):
        raise Problem(f"{config}: the repository block is not as scripts/set_repository.py writes it "
                      "for a valid URL and REF: run it again")
    return url, ref


def check(root: Path = ROOT) -> int:
    """Exit status 0 if ``_config.yml`` names a repository that every chapter's first cell names too, else 1."""
    try:
        found = configured(root)
        if found is None:
            print("_config.yml names no repository: run python scripts/set_repository.py URL REF before "
                  "publishing, or the book's launch buttons and install cells would lead nowhere", file=sys.stderr)
            return 1
        url, ref = found
        for path in chapters(root):
            if names_in(path, first_cell(path)[2]) != {"REPOSITORY": url, "RELEASE": ref}:
                raise Problem(f"{path}: the first cell's REPOSITORY and RELEASE are not {url} and {ref} "
                              "of _config.yml: run python scripts/set_repository.py URL REF")
        if published_url(root) != runs_url(url):
            raise Problem(f"{root / PUBLISHED}: runs_url is not {runs_url(url)}, the Pages site of {url}: "
                          "run python scripts/set_repository.py URL REF")
    except Problem as err:
        print(err, file=sys.stderr)
        return 1
    return 0


def rewritten(root: Path, url: str, ref: str) -> dict[Path, str]:
    """The new text of ``_config.yml`` and of every chapter, each checked; a Problem before anything is written."""
    config = root / "_config.yml"
    text, found = BLOCK_RE.subn(lambda _: config_block(url, ref), read(config))
    if found != 1:
        raise Problem(f"{config}: no '# >>> repository' block to rewrite")
    files = {config: text}
    for path in chapters(root):
        notebook, cell, source = first_cell(path)
        new, n_url = re.subn(r'(?m)^REPOSITORY = "[^"\n]*"', lambda _: f'REPOSITORY = "{url}"', source, count=1)
        new, n_ref = re.subn(r'(?m)^RELEASE = "[^"\n]*"', lambda _: f'RELEASE = "{ref}"', new, count=1)
        if not (n_url and n_ref):
            raise Problem(f"{path}: the first cell has no REPOSITORY or RELEASE line")
        if names_in(path, new) != {"REPOSITORY": url, "RELEASE": ref}:
            raise Problem(f"{path}: the first cell assigns REPOSITORY or RELEASE more than once")
        cell["source"] = new.splitlines(keepends=True)
        files[path] = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    published_url(root)  # there and readable, so that it is rewritten with the rest or nothing is
    files[root / PUBLISHED] = published_text(url)
    return files


def write_all(files: dict[Path, str]) -> None:
    """Write every file or none: each to a temporary file first, then all moved into place."""
    temporary = {path: path.with_name(path.name + ".tmp") for path in files}
    try:
        for path, text in files.items():
            temporary[path].write_text(text, encoding="utf-8")
    except OSError as err:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        raise Problem(f"{err.filename}: cannot be written ({err.strerror}); nothing changed") from None
    for path, tmp in temporary.items():
        os.replace(tmp, path)


def main(argv: list[str], root: Path = ROOT) -> int:
    if argv == ["--check"]:
        return check(root)
    if len(argv) != 2 or not valid_url(argv[0]) or not valid_ref(argv[1]):
        print(USAGE, file=sys.stderr)
        return 2
    url, ref = argv
    try:
        files = rewritten(root, url, ref)
        write_all(files)
    except Problem as err:
        print(err, file=sys.stderr)
        return 1
    print(f"repository set to {url} at {ref} in _config.yml and {len(files) - 2} chapters; "
          f"published runs at {runs_url(url)} in {PUBLISHED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
