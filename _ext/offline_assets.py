"""Serve MathJax, the Jupyter widget scripts and onnxruntime-web from the built book, not from a CDN.

By default Jupyter Book 1 loads MathJax and the widget manager from CDNs, so a
reader without network sees raw TeX and empty widget boxes. When the npm
packages of ``package.json`` are installed (``make book`` installs them), this
extension copies their files into the build's static folder and points Sphinx
and myst-nb at the local copies. Without them the CDN defaults stay.

The in-browser latent explorers (``_ext/latent_web.py``) decode with
onnxruntime-web's WebAssembly build: its script, the module it loads and the
``.wasm`` file go to ``_static/offline/ort/``. Without the package the explorers
show their static pictures (nothing is loaded from a CDN).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGES = {
    "mathjax": Path("node_modules/mathjax/es5"),
    "widgets": Path("node_modules/@jupyter-widgets/html-manager/dist"),
    "requirejs": Path("node_modules/requirejs/require.js"),
}
# onnxruntime-web, WebAssembly backend only: the classic-script API, the Emscripten module it
# imports and its single-threaded-capable SIMD binary (the WebGL/WebGPU builds are not needed)
ORT = Path("node_modules/onnxruntime-web/dist")
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def _stage_ort(src: Path, stage: Path) -> bool:
    """Copy onnxruntime-web's WebAssembly files to ``stage/offline/ort``; False if not installed."""
    files = [src / ORT / name for name in ORT_FILES]
    if not all(f.exists() for f in files):
        logger.info("offline_assets: %s not installed; the latent explorers show static pictures", ORT)
        return False
    target = stage / "offline" / "ort"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, target / f.name)
    return True


def _stage(app: Sphinx, config: Config) -> None:
    src = Path(app.srcdir)
    stage = Path(app.outdir).parent / "offline_static"
    target = stage / "offline"
    if target.exists():
        shutil.rmtree(target)
    app.config.vae_ort_staged = _stage_ort(src, stage)
    found = {name: src / rel for name, rel in PACKAGES.items()}
    missing = [str(PACKAGES[n]) for n, p in found.items() if not p.exists()]
    if missing:
        logger.info("offline_assets: %s not installed; MathJax and widgets load from CDNs",
                    ", ".join(missing))
        if app.config.vae_ort_staged:
            config.html_static_path = [*config.html_static_path, str(stage)]
        return
    ignore = shutil.ignore_patterns("sre", "*.map", "*-speech.js", "node-main.js")
    shutil.copytree(found["mathjax"], target / "mathjax", ignore=ignore)
    shutil.copytree(found["widgets"], target / "widgets", ignore=shutil.ignore_patterns("*.map"))
    shutil.copy2(found["requirejs"], target / "require.js")
    config.html_static_path = [*config.html_static_path, str(stage)]
    config.mathjax_path = "offline/mathjax/tex-chtml-full.js"
    config.nb_ipywidgets_js = {
        "offline/require.js": {},
        "offline/widgets/embed-amd.js": {},
    }
    app.connect("html-page-context", _widget_assets_path, priority=1)
    logger.info("offline_assets: MathJax and widget scripts served from _static/offline")


def _widget_assets_path(app: Sphinx, pagename: str, templatename: str, context: dict,
                        doctree) -> None:
    """Tell the widget manager where its own files are, relative to this page.

    It finds its fonts and styles through the module path that require.js gives it,
    which by default points at the page's folder; map it to the staged copy. A global
    ``require`` object defined before require.js loads is require.js's configuration,
    so it goes only on pages that load the widget scripts.
    """
    from myst_nb.sphinx_ import NbMetadataCollector

    if not NbMetadataCollector.get_js_files(app.env, pagename):
        return
    here = context["pathto"]("_static/offline/widgets", 1)
    app.add_js_file(None, priority=450, body=(
        "var require = {paths: {'@jupyter-widgets/html-manager/dist': "
        f"new URL({here!r}, document.baseURI).href}}}};"))
    app.add_js_file(None, priority=501, body=MATHJAX2_HUB_SHIM)


# The widget manager typesets labels with MathJax 2's `MathJax.Hub.Queue`; the book
# uses MathJax 3, which has no Hub. This stand-in forwards to MathJax 3's typesetting
# (and holds requests made before MathJax has loaded).
MATHJAX2_HUB_SHIM = """(function () {
  var pending = [];
  var hub = {Queue: function (job) {
    var el = job && job[2];
    if (window.MathJax && window.MathJax.typesetPromise) { window.MathJax.typesetPromise(el ? [el] : undefined); }
    else if (el) { pending.push(el); }
  }};
  var config = window.MathJax = window.MathJax || {};
  config.Hub = hub;
  config.startup = config.startup || {};
  config.startup.ready = function () {
    window.MathJax.startup.defaultReady();
    window.MathJax.Hub = hub;
    window.MathJax.startup.promise.then(function () {
      if (pending.length) { window.MathJax.typesetPromise(pending); }
    });
  };
})();"""


def setup(app: Sphinx) -> dict:
    app.add_config_value("vae_ort_staged", False, "")
    app.connect("config-inited", _stage, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
