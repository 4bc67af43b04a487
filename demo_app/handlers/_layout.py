"""The page layout shared by the handler modules (private: its name starts with
``_``, so no URL reaches it). Edit it and every handler that imports it is
reloaded with it."""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Request

TITLE = "hotmod publisher demo"


def page(request: Request, heading: str, body: str) -> str:
    """A whole HTML page; ``body`` is HTML already, ``heading`` is text."""
    root = escape(request.script_root)
    generation = request.environ.get("hotmod.generation", "?")
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(heading)} · {escape(TITLE)}</title></head>
<body style="font-family: system-ui, sans-serif; margin: 2em; max-width: 40em">
<h1>{escape(heading)}</h1>
{body}
<p style="color: #666">Handler folder <code>demo_app/handlers/</code>, generation {generation}.
<a href="{root}/">index</a></p>
</body>
</html>
"""
