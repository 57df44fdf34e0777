"""Every link inside the built book leads somewhere, and launch buttons appear only for a set repository.

Runs with the browser test (``make browser-test``) on the same build. A link is
internal when it has no scheme (``href="chapters/05_mlp_vae.html#the-networks"``):
its file must exist in the build and, if it names an anchor in an HTML page, that
page must have an element with that ``id``. External links are not fetched (CI is
offline); the launch buttons are checked against ``repository`` in ``_config.yml`` instead.
"""

from __future__ import annotations

import functools
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from test_book_pages import ROOT, book_dir

pytestmark = pytest.mark.browser

LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src",
              "iframe": "src"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(values[key])
        target = values.get(LINK_ATTRS.get(tag, ""))
        if target:
            self.links.append(target)


@functools.cache
def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def html_pages() -> list[Path]:
    """The book's pages (the theme's template snippets under ``_static`` are not pages)."""
    book = book_dir()
    if book is None:
        return []
    return sorted(p for p in book.resolve().rglob("*.html")
                  if not p.relative_to(book.resolve()).parts[0].startswith("_"))


def broken_links(book: Path, page: Path) -> list[str]:
    """The internal links of ``page`` whose file or anchor is missing."""
    broken = []
    book, page = book.resolve(), page.resolve()
    for link in parse(page).links:
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or link.startswith("#") and not parts.fragment:
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.exists() or book.resolve() not in (target, *target.parents):
            broken.append(f"{link} (no file {target})")
            continue
        if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
            broken.append(f"{link} (no anchor #{parts.fragment} in {target.name})")
    return broken


def test_book_was_built():
    assert book_dir() is not None, "no built book: run `make book` or `make book-quick` first"
    assert len(html_pages()) >= 13


def test_no_broken_internal_links():
    book = book_dir()
    assert book is not None, "no built book"
    broken = {p.name: b for p in html_pages() if (b := broken_links(book, p))}
    assert not broken, f"broken internal links: {broken}"


def test_link_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#here">b</a><a href="c.html">c</a>'
                                     '<a href="#top">top</a><a id="top"></a>'
                                     '<a href="https://example.org/x">x</a>')
    (tmp_path / "b.html").write_text('<h1 id="there">b</h1>')
    assert broken_links(tmp_path, tmp_path / "a.html") == [
        "b.html#here (no anchor #here in b.html)",
        f"c.html (no file {(tmp_path / 'c.html').resolve()})",
    ]


def test_launch_buttons_only_for_a_configured_repository():
    book = book_dir()
    assert book is not None, "no built book"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = urlsplit(config["repository"]["url"]).path.strip("/")
    branch = config["repository"]["branch"]
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        page = book / "chapters" / f"{notebook.stem}.html"
        links = parse(page).links
        if not repo:  # unset: no button may lead to a repository nobody here controls
            launch = [link for link in links if "colab.research.google.com" in link or "mybinder.org" in link]
            assert launch == [], f"{page.name}: launch buttons without a repository: {launch}"
            continue
        colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/chapters/{notebook.name}"
        binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=tree/chapters/{notebook.name}"
        assert colab in links, f"{page.name}: no Colab button for {colab}"
        assert binder in links, f"{page.name}: no Binder button for {binder}"
