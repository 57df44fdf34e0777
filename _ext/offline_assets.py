"""Serve MathJax and the Jupyter widget scripts from the built book, not from a CDN.

By default Jupyter Book 1 loads MathJax and the widget manager from CDNs, so a
reader without network sees raw TeX and empty widget boxes. When the npm
packages of ``package.json`` are installed (``make book`` installs them), this
extension copies their files into the build's static folder and points Sphinx
and myst-nb at the local copies. Without them the CDN defaults stay.
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


def _stage(app: Sphinx, config: Config) -> None:
    src = Path(app.srcdir)
    found = {name: src / rel for name, rel in PACKAGES.items()}
    missing = [str(PACKAGES[n]) for n, p in found.items() if not p.exists()]
    if missing:
        logger.info("offline_assets: %s not installed; MathJax and widgets load from CDNs",
                    ", ".join(missing))
        return
    stage = Path(app.outdir).parent / "offline_static"
    target = stage / "offline"
    if target.exists():
        shutil.rmtree(target)
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
    logger.info("offline_assets: MathJax and widget scripts served from _static/offline")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _stage, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
