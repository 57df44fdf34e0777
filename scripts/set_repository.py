"""Point the book at its public repository and release: ``python scripts/set_repository.py URL REF``.

Until this is run the book names no repository: no launch or repository buttons, and each
chapter's first cell refuses to install anything (a notebook must never install code from a
repository nobody here controls). ``URL`` is ``https://github.com/OWNER/NAME``; ``REF`` is the
tag or commit of the book's release, so that a chapter opened in Colab installs exactly the
package that built it, never a moving branch. The script rewrites the marked block of
``_config.yml`` (launch buttons for Colab and Binder at ``REF``, the repository and issues
buttons) and the ``REPOSITORY``/``RELEASE`` lines of every chapter's first cell;
``tests/test_install_cell.py`` fails if the two ever disagree.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL_RE = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+$")
REF_RE = re.compile(r"^[\w][\w.-]*$")
BLOCK_RE = re.compile(r"(?ms)^# >>> repository.*?^# <<< repository$")
USAGE = ("usage: python scripts/set_repository.py https://github.com/OWNER/NAME TAG_OR_COMMIT\n"
         "       python scripts/set_repository.py --check")


def check(root: Path = ROOT) -> int:
    """Exit status 0 if ``_config.yml`` names a repository, else 1 with one line (publishing needs it)."""
    block = BLOCK_RE.search((root / "_config.yml").read_text())
    url = re.search(r"(?m)^  url: (.*)$", block.group(0)) if block else None
    if url and URL_RE.match(url.group(1).strip().strip('"')):
        return 0
    print("_config.yml names no repository: run python scripts/set_repository.py URL REF before publishing, "
          "or the book's launch buttons and install cells would lead nowhere", file=sys.stderr)
    return 1


def config_block(url: str, ref: str) -> str:
    """The ``_config.yml`` block for a configured repository."""
    return f"""# >>> repository (written by scripts/set_repository.py)
repository:
  url: {url}
  branch: {ref}
  path_to_book: ""
launch_buttons:
  notebook_interface: classic
  colab_url: https://colab.research.google.com
  binderhub_url: https://mybinder.org
html:
  use_repository_button: true
  use_issues_button: true
# <<< repository"""


def main(argv: list[str], root: Path = ROOT) -> int:
    if argv == ["--check"]:
        return check(root)
    if len(argv) != 2 or not URL_RE.match(argv[0]) or not REF_RE.match(argv[1]):
        print(USAGE, file=sys.stderr)
        return 2
    url, ref = argv
    config = root / "_config.yml"
    text, found = BLOCK_RE.subn(config_block(url, ref), config.read_text())
    if found != 1:
        print(f"{config}: no '# >>> repository' block to rewrite", file=sys.stderr)
        return 1
    chapters = sorted((root / "chapters").glob("*.ipynb"))
    for path in chapters:
        nb = json.loads(path.read_text())
        cell = nb["cells"][0]
        source = "".join(cell["source"])
        new, n_url = re.subn(r'(?m)^REPOSITORY = "[^"]*"', f'REPOSITORY = "{url}"', source, count=1)
        new, n_ref = re.subn(r'(?m)^RELEASE = "[^"]*"', f'RELEASE = "{ref}"', new, count=1)
        if not (n_url and n_ref):
            print(f"{path.name}: first cell has no REPOSITORY or RELEASE line", file=sys.stderr)
            return 1
        cell["source"] = new.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    config.write_text(text)
    print(f"repository set to {url} at {ref} in _config.yml and {len(chapters)} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
