"""Drop script tags that an extension added twice to a page.

sphinx-thebe (always loaded by Jupyter Book 1) adds its inline configuration
script twice, and the second copy throws "Identifier 'THEBE_JS_URL' has
already been declared" in the reader's console. Keeping the first copy of
each identical script fixes that without changing anything else.
"""

from __future__ import annotations

from sphinx.application import Sphinx


def _dedupe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        # an inline script may carry filename None or "": same script either way
        name = getattr(js, "filename", js) or ""
        key = (str(name), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept  # in place: later handlers append to this same list


def setup(app: Sphinx) -> dict:
    # early: handlers of this event stop at the first that returns a template name
    app.connect("html-page-context", _dedupe, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
