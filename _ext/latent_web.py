"""The in-browser latent explorers of ``vae_tut.web``: their script, style and ONNX decoders.

A chapter cell displays ``vae_tut.web.explorer(...)`` (or ``sweep(...)``), an HTML
block. On each page that holds one, this extension adds ``vae_explorer.js`` and
``vae_explorer.css`` (from ``_ext/static/``) and copies every decoder the page names
(``data-vae-model="NAME.onnx"``) from the run cache, where the notebook exported it,
to ``_static/vae-models/NAME.onnx`` of the build. The decoders run with onnxruntime-web,
which ``offline_assets`` serves from ``_static/offline/ort/``. A decoder missing from
the run cache (a notebook output reused after the cache was emptied), or one that fails
its checksum or is another model's (``vae_tut.web.decoder_bytes``), is a one-line warning
and is not copied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MODEL_ATTR = re.compile(r'data-vae-model="([^"]+)"')


def _static_path(app: Sphinx, config: Config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def _page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    body = context.get("body") or ""
    if 'class="vae-explorer"' not in body and 'class="vae-sweep"' not in body:
        return
    app.add_css_file("vae_explorer.css")
    app.add_js_file("vae_explorer.js", priority=600)
    names = MODEL_ATTR.findall(body)
    if names and not getattr(app.config, "vae_ort_staged", False):
        app.add_js_file(None, priority=590, body="window.vaeNoDecoder = true;")  # keep the static pictures
        logger.info("latent_web: %s has in-browser explorers but onnxruntime-web is not installed "
                    "(npm install; see package.json): they show static pictures", pagename)
    if not names:
        return
    from vae_tut.errors import VaeTutError
    from vae_tut.web import MODELS_FOLDER, decoder_bytes, model_file

    target = Path(app.outdir) / "_static" / MODELS_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(names):
        try:
            source = model_file(name)  # refuses a name that is not a plain file name
        except VaeTutError as err:
            logger.warning("latent_web: %s: %s", pagename, err)
            continue
        dest = target / name
        try:
            if not source.exists():
                logger.warning("latent_web: %s names the decoder %s, which is not in the run cache (%s); "
                               "run the chapter again (delete its execution cache entry)", pagename, name, source)
                dest.unlink(missing_ok=True)  # never serve a copy left by an earlier build
                continue
            blob = decoder_bytes(name)  # checked against its entry's checksum and key
        except VaeTutError as err:
            logger.warning("latent_web: %s: %s (not copied)", pagename, err)
            dest.unlink(missing_ok=True)
            continue
        if not dest.exists() or dest.read_bytes() != blob:
            partial = dest.with_name(f".{name}.{os.getpid()}")
            partial.write_bytes(blob)
            os.replace(partial, dest)  # a reader (or a parallel writer) never sees half a file


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _static_path)
    app.connect("html-page-context", _page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
