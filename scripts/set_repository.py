"""Point the book at its public repository: ``python scripts/set_repository.py URL [BRANCH]``.

The repository is set once, as ``repository.url`` in ``_config.yml`` (the launch
buttons read it there). A notebook opened in Colab cannot read that file, so each
chapter's first cell carries a copy in its ``REPOSITORY = ...`` line; this script
rewrites both, and ``tests/test_install_cell.py`` fails if they ever disagree.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL_RE = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+$")


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or not URL_RE.match(argv[0]):
        print("usage: python scripts/set_repository.py https://github.com/OWNER/NAME [BRANCH]",
              file=sys.stderr)
        return 2
    url, branch = argv[0], (argv[1] if len(argv) == 2 else None)
    config = ROOT / "_config.yml"
    text = re.sub(r"(?m)^(  url: ).*$", rf"\g<1>{url}", config.read_text(), count=1)
    if branch:
        text = re.sub(r"(?m)^(  branch: ).*$", rf"\g<1>{branch}", text, count=1)
    config.write_text(text)
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cell = nb["cells"][0]
        source = "".join(cell["source"])
        new = re.sub(r'(?m)^REPOSITORY = "[^"]*"', f'REPOSITORY = "{url}"', source, count=1)
        if new == source and f'REPOSITORY = "{url}"' not in source:
            print(f"{path.name}: first cell has no REPOSITORY line", file=sys.stderr)
            return 1
        cell["source"] = new.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print(f"repository set to {url} in _config.yml and {len(list((ROOT / 'chapters').glob('*.ipynb')))} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
