"""Every number a chapter prints is the same in every build: no chapter draws from torch's global
random generator (new weights, random tensors) before it has seeded it.

torch seeds that generator afresh in each process, so an unseeded draw prints a different number on
every build (chapter 2 once printed the loss of an untrained autoencoder that changed each time).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb"))
# calls that draw from the global generator: new layers (their initial weights) and random tensors
DRAWS = re.compile(
    r"\b(build_model|build_classifier|nn\.(Linear|Conv2d|ConvTranspose2d)"
    r"|torch\.(rand|randn|randint|randperm|rand_like|randn_like|randint_like|multinomial|bernoulli|normal))\s*\("
)


def unseeded_draws(cells: list[dict]) -> list[str]:
    """The code lines, in running order, that draw from torch's generator before any ``manual_seed``."""
    found, seeded = [], False
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            code = line.split("#")[0]
            seeded = seeded or "manual_seed(" in code
            if not seeded and DRAWS.search(code):
                found.append(line.strip())
    return found


def test_the_check_finds_an_unseeded_draw():
    assert CHAPTERS, "no chapters found"

    def cell(text):
        return {"cell_type": "code", "source": [text]}

    assert unseeded_draws([cell("net = build_model('mlp', 2)  # fresh weights")]) == [
        "net = build_model('mlp', 2)  # fresh weights"]
    assert unseeded_draws([cell("torch.manual_seed(0)"), cell("x = torch.randn(3)")]) == []
    assert unseeded_draws([cell("# torch.manual_seed(0)\nx = torch.rand(3)")]) == ["x = torch.rand(3)"]
    assert unseeded_draws([{"cell_type": "markdown", "source": ["torch.randn(3)"]}]) == []


def test_no_chapter_draws_before_seeding():
    found = {notebook.name: unseeded_draws(json.loads(notebook.read_text())["cells"]) for notebook in CHAPTERS}
    unseeded = {name: lines for name, lines in found.items() if lines}
    assert not unseeded, f"seed torch (torch.manual_seed) before these lines: {unseeded}"
