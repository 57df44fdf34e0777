"""Open every page of the built book in headless Chromium with the network cut off.

Run with ``make browser-test`` after a build (CI does, after ``make book-quick``).
Each page, in the light and in the dark theme, must typeset its maths, render its
tables, load every image, render its widgets and log no console errors; any request
leaving 127.0.0.1 is blocked and fails the page. Every picture in the text must be
opaque, so that no figure shows dark text on the dark theme's background. A
screenshot of each page in each theme is saved for a person to look at.

The in-browser latent explorers (``vae_tut/web.py``) must load their ONNX decoder,
decode the three fixed codes of the page to PyTorch's pixels (within 1e-3), change
the image on a click on the pad or a slider move, and the sweep sliders must switch
pictures; a screenshot of each explorer and sweep is saved too.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import statistics
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
      .filter(p => /\|\s*[-\u2013\u2014]+\s*\|\s*[-\u2013\u2014]+/.test(p.textContent))
      .map(p => p.textContent.slice(0, 60));
  return {maths, typeset, raw, images, widgetSlots, widgets, rawTables};
}"""

# Share of pixels that are not fully opaque, for each picture in the text (a figure saved with a
# transparent background would show its black labels on the dark theme's near-black page).
OPACITY_JS = r"""() => [...document.querySelectorAll('.bd-content img')]
  .filter(i => i.complete && i.naturalWidth > 0)
  .map(i => {
    const c = document.createElement('canvas');
    c.width = Math.min(i.naturalWidth, 400); c.height = Math.min(i.naturalHeight, 400);
    const ctx = c.getContext('2d');
    ctx.drawImage(i, 0, 0, c.width, c.height);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let clear = 0;
    for (let k = 3; k < d.length; k += 4) { if (d[k] < 250) { clear += 1; } }
    return {src: (i.getAttribute('src') || '').slice(0, 80), clear: clear / (d.length / 4)};
  })"""


def open_offline(browser, server, **options):
    """A browser page whose requests outside the test server are blocked; lists of what went wrong."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    blocked, errors, missing = [], [], []

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
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    return context, page, {"blocked": blocked, "errors": errors, "missing": missing}


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("page_path", pages())
def test_page_renders_offline(page_path, mode, server, browser, shots):
    # the theme starts in "auto" mode (default_mode in _config.yml): it follows the reader's system
    context, page, trouble = open_offline(browser, server, color_scheme=mode)
    blocked, errors, missing = trouble["blocked"], trouble["errors"], trouble["missing"]
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    if page.locator("div.math, span.math").count():
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length >= "
            "document.querySelectorAll('div.math, span.math').length", timeout=30_000)
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        page.wait_for_selector(".jupyter-widgets", timeout=30_000)
    page.wait_for_timeout(300)
    result = page.evaluate(CHECKS_JS)
    theme = page.evaluate("document.documentElement.dataset.theme")
    opacity = page.evaluate(OPACITY_JS)
    suffix = "" if mode == "light" else ".dark"
    page.screenshot(path=str(shots / (page_path.replace("/", "__") + suffix + ".png")), full_page=True)
    context.close()

    assert theme == mode, f"the page is in the {theme!r} theme, not {mode!r}"
    see_through = [i for i in opacity if i["clear"] > 0.001]
    assert not see_through, f"pictures with a transparent background (unreadable in the dark theme): {see_through[:3]}"

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


# ---------------------------------------------------------------- the in-browser explorers

def explorer_pages() -> list[str]:
    book = book_dir()
    if book is None:
        return ["<book not built>"]
    found = [p for p in pages() if any(f'class="{c}"' in (book / p).read_text(encoding="utf-8")
                                       for c in ("vae-explorer", "vae-sweep"))]
    return found or ["<no explorers in the build>"]


def _canvas(explorer, selector="canvas.vae-image"):
    return explorer.evaluate("(root, selector) => { const c = root.querySelector(selector); "
                             "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; "
                             "return Array.from(d.filter((v, k) => k % 4 === 0)); }", selector)


@pytest.mark.parametrize("page_path", explorer_pages())
def test_explorers_decode_in_the_browser(page_path, server, browser, shots):
    if page_path.startswith("<"):
        pytest.fail(f"{page_path}: the chapters should show in-browser explorers and sweeps")
    context, page, trouble = open_offline(browser, server)
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    stem = page_path.replace("/", "__").removesuffix(".html")
    explorers = page.locator(".vae-explorer")
    n = explorers.count()
    timings = {}
    if n:
        page.wait_for_function("[...document.querySelectorAll('.vae-explorer')]"
                               ".every(e => ['ready', 'failed'].includes(e.dataset.state))", timeout=120_000)
    for i in range(n):
        ex = explorers.nth(i)
        assert ex.get_attribute("data-state") == "ready", f"explorer {i} did not load: {trouble}"
        data = json.loads(ex.locator("script.vae-explorer-data").text_content())
        assert ex.locator(".vae-static").is_hidden() and ex.locator(".vae-live").is_visible()

        # the three fixed codes: the decoder in the page gives PyTorch's pixels (exported at build time)
        assert len(data["checks"]) == 3
        for check in data["checks"]:
            floats = ex.evaluate("async (root, code) => { await root.vaeExplorer.show(code); "
                                 "return Array.from(root.vaeExplorer.last); }", check["code"])
            want = check["pixels"]
            assert len(floats) == len(want) == 784
            assert max(abs(a - b) for a, b in zip(floats, want)) <= 1e-3
            # the canvas holds 8-bit grey levels (255 = white = 0 ink): PyTorch's value within 1e-3
            # once rounded to the nearest level
            shown = _canvas(ex)
            assert max(abs((255 - v) / 255 - w) for v, w in zip(shown, want)) <= 0.5 / 255 + 1e-3

        before, decodes = _canvas(ex), int(ex.get_attribute("data-decodes"))
        if data["z"] == 2:
            pad = ex.locator("canvas.vae-pad-marks")
            box = pad.bounding_box()
            pad.click(position={"x": 0.2 * box["width"], "y": 0.3 * box["height"]})
            page.wait_for_function("([root, n]) => +root.dataset.decodes > n", arg=[ex.element_handle(), decodes])
            code = ex.evaluate("root => root.vaeExplorer.code.slice()")
            lo, hi = data["pad"]["lo"], data["pad"]["hi"]
            assert code[0] == pytest.approx(lo + 0.2 * (hi - lo), abs=0.02 * (hi - lo))
            assert code[1] == pytest.approx(hi - 0.3 * (hi - lo), abs=0.02 * (hi - lo))
        else:
            first = ex.locator(f'input[data-dim="{data["dims"][0]["index"]}"]')
            first.focus()
            first.press("End")
            page.wait_for_function("([root, n]) => +root.dataset.decodes > n", arg=[ex.element_handle(), decodes])
            code = ex.evaluate("root => root.vaeExplorer.code.slice()")
            assert code[data["dims"][0]["index"]] == pytest.approx(data["dims"][0]["limit"])
            assert ex.locator(".vae-dim.inactive").count() == sum(not d["active"] for d in data["dims"])
        page.wait_for_timeout(100)
        assert _canvas(ex) != before, "the decoded image did not change"

        # the interpolation panel: t = 0 and t = 1 show different decodings
        ex.evaluate("root => root.vaeExplorer.setT(0)")
        at0 = _canvas(ex, "canvas.vae-morph")
        ex.evaluate("root => root.vaeExplorer.setT(1)")
        assert _canvas(ex, "canvas.vae-morph") != at0

        times = ex.evaluate("root => root.vaeExplorer.times.slice()")
        timings[f"{stem} explorer {i} (z = {data['z']})"] = {
            "decodes": len(times), "median_ms": statistics.median(times), "max_ms": max(times)}
        assert statistics.median(times) < 50, f"decoding takes {statistics.median(times):.1f} ms"
        ex.scroll_into_view_if_needed()
        ex.screenshot(path=str(shots / f"explorer-{stem}-{i}.png"))

    sweeps = page.locator(".vae-sweep")
    n_sweeps = sweeps.count()
    for i in range(n_sweeps):
        sw = sweeps.nth(i)
        visible = "root => [...root.querySelectorAll('.vae-sweep-frame')].filter(f => !f.hidden)" \
                  ".map(f => f.querySelector('img.vae-sweep-samples').src)"
        shown = sw.evaluate(visible)
        assert len(shown) == 1, "a sweep shows one run at a time"
        slider = sw.locator(".vae-sweep-control input[type=range]")
        seen = {shown[0]}
        slider.focus()
        for key in ("Home", "End"):
            slider.press(key)
            now = sw.evaluate(visible)
            assert len(now) == 1
            seen.add(now[0])
        assert len(seen) >= 2, "the sweep slider does not switch pictures"
        sw.scroll_into_view_if_needed()
        sw.screenshot(path=str(shots / f"sweep-{stem}-{i}.png"))
    context.close()

    if timings:
        log = shots / "explorer-timings.json"
        known = json.loads(log.read_text()) if log.exists() else {}
        known.update(timings)
        log.write_text(json.dumps(known, indent=1, sort_keys=True))
    assert n or n_sweeps
    for what in ("blocked", "missing", "errors"):
        assert not trouble[what], f"{what}: {trouble[what][:5]}"
