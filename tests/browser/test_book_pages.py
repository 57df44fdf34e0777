"""Open every page of the built book in headless Chromium with the network cut off.

Run with ``make browser-test`` after a build (CI does, after ``make book-quick``).
Each page must typeset its maths, render its tables, load every image, render its
widgets and log no console errors; any request leaving 127.0.0.1 is blocked and fails the page. A
screenshot of each page is saved for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT / "_build" / "html", ROOT / "_build_quick" / "_build" / "html"]
CHROMIUM = os.environ.get("VAE_TUT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def book_dir() -> Path | None:
    env = os.environ.get("VAE_TUT_BOOK_HTML")
    if env:
        return Path(env)
    built = [p for p in CANDIDATES if (p / "intro.html").exists()]
    return max(built, key=lambda p: (p / "intro.html").stat().st_mtime) if built else None


def pages() -> list[str]:
    book = book_dir()
    if book is None:
        return ["<book not built>"]
    found = sorted(str(p.relative_to(book)) for p in book.rglob("*.html")
                   if not p.relative_to(book).parts[0].startswith("_") and p.name != "index.html")
    return found


@pytest.fixture(scope="module")
def server():
    book = book_dir()
    if book is None:
        pytest.fail("no built book: run `make book` or `make book-quick` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(book))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make browser-test does)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    book = book_dir()
    out = Path(os.environ.get("VAE_TUT_SCREENSHOTS", (book or ROOT) / ".." / "screenshots")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


CHECKS_JS = r"""() => {
  const maths = document.querySelectorAll('div.math, span.math').length;
  const typeset = document.querySelectorAll('mjx-container').length;
  const raw = [...document.querySelectorAll('div.math, span.math')]
      .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60));
  const images = [...document.images].map(i => ({src: i.getAttribute('src'),
      ok: i.complete && i.naturalWidth > 0}));
  const widgetSlots = document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length;
  const widgets = [...document.querySelectorAll('.jupyter-widgets')]
      .filter(e => e.getBoundingClientRect().height > 0).length;
  // a Markdown table left as a paragraph (smart quotes may have turned --- into a dash)
  const rawTables = [...document.querySelectorAll('p')]
      .filter(p => /\|\s*[-\u2013\u2014]+\s*\|\s*[-\u2013\u2014]+/.test(p.textContent)).map(p => p.textContent.slice(0, 60));
  return {maths, typeset, raw, images, widgetSlots, widgets, rawTables};
}"""


@pytest.mark.parametrize("page_path", pages())
def test_page_renders_offline(page_path, server, browser, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked, errors = [], []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    if page.locator("div.math, span.math").count():
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length >= "
            "document.querySelectorAll('div.math, span.math').length", timeout=30_000)
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        page.wait_for_selector(".jupyter-widgets", timeout=30_000)
    page.wait_for_timeout(300)
    result = page.evaluate(CHECKS_JS)
    page.screenshot(path=str(shots / (page_path.replace("/", "__") + ".png")), full_page=True)
    context.close()

    assert not blocked, f"requests left the machine: {blocked[:5]}"
    assert not missing, f"files missing from the build: {missing[:5]}"
    assert not errors, f"console errors: {errors[:5]}"
    assert not result["raw"], f"untypeset maths: {result['raw'][:3]}"
    assert result["typeset"] >= result["maths"]
    assert not result["rawTables"], f"Markdown tables shown as text: {result['rawTables'][:2]}"
    broken = [i["src"] for i in result["images"] if not i["ok"]]
    assert not broken, f"images that did not load: {broken[:5]}"
    if result["widgetSlots"]:
        assert result["widgets"] > 0, "widget outputs are empty"
