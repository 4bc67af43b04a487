"""The debug pages: one while the latest edit failed to load, one for an exception
raised by the application while serving a request.

Everything that comes from the failure or from the source file is HTML-escaped:
an exception message or a source line may contain markup, and this page must never
run it; its Content-Security-Policy (:data:`PAGE_POLICY`) allows no script at all and
only the page's own style. The source is read when the page is rendered (once per
failure, never per ordinary request), and only from a file inside the watched roots:
a failure may name any file (a ``SyntaxError`` raised for a file that module code ran
with ``runpy``, say), and the page must not become a way to read it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import tokenize
from collections.abc import Callable
from typing import Any

from ._guard import NOTHING_POLICY

#: Lines of source shown before and after the failing line.
CONTEXT_LINES = 5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { color: #b00020; font-size: 1.4em; }
.where { font-family: monospace; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.source { border-collapse: collapse; font-family: monospace; background: #f6f6f6; }
.source td { padding: 0 .6em; white-space: pre; }
.source td.no { color: #888; text-align: right; }
.source tr.error { background: #ffd7d7; font-weight: bold; }
.note { color: #555; }
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: The error page's Content-Security-Policy: nothing but its own inline style.
PAGE_POLICY = NOTHING_POLICY.replace(
    "default-src 'none';", f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}';"
)


def source_context(
    file: str | None, line: int | None, *, context: int = CONTEXT_LINES
) -> list[tuple[int, str]]:
    """Return ``(number, text)`` for the lines around ``line`` of ``file``.

    Empty when the file or the line is unknown or the file cannot be read (it may
    have been deleted since the failure).
    """
    if not file or not line or line < 1:
        return []
    try:
        with tokenize.open(file) as f:
            lines = f.read().splitlines()
    except (OSError, SyntaxError, UnicodeDecodeError):
        # SyntaxError here means a bad coding cookie: the page still shows the traceback.
        return []
    first = max(1, line - context)
    last = min(len(lines), line + context)
    return [(number, lines[number - 1]) for number in range(first, last + 1)]


def render_error_page(
    failure: Any, *, generation: int, readable: Callable[[str], bool]
) -> bytes:
    """Render ``failure`` (a :class:`reloader.LoadFailure`) as a UTF-8 HTML page.

    ``readable(path)`` says whether the page may show lines of that file: the engine's
    test of the watched roots (``Roots.contains``)."""
    module = html.escape(str(getattr(failure, "module", "") or "?"))
    return _render(
        failure,
        readable=readable,
        intro=f"The latest edit of module <strong>{module}</strong> failed to load, at",
        note=f"Generation {generation} is still loaded; fix the file and reload this page.",
    )


def render_exception_page(
    failure: Any, *, generation: int, request: str, readable: Callable[[str], bool]
) -> bytes:
    """Render an exception the application raised while serving ``request`` (e.g.
    ``"GET /blog"``), described as a :class:`reloader.LoadFailure`: the traceback and
    the source around the innermost line of the application's own code (only from a
    file ``readable`` allows); no local variables, no console."""
    return _render(
        failure,
        readable=readable,
        intro=f"<strong>{html.escape(request)}</strong> raised an exception, at",
        note=f"Served by generation {generation} (hotmod debug mode; in production mode the"
        " exception goes to the server as usual).",
    )


def _render(failure: Any, *, readable: Callable[[str], bool], intro: str, note: str) -> bytes:
    esc = html.escape
    module = str(getattr(failure, "module", "") or "?")
    file = getattr(failure, "file", None)
    line = getattr(failure, "line", None)
    kind = str(getattr(failure, "type", "") or "Error")
    message = str(getattr(failure, "message", "") or "")
    traceback = str(getattr(failure, "traceback", "") or "")

    where = f"{file}:{line}" if file and line else str(file or "unknown file")
    rows = []
    shown = file if file and readable(file) else None
    for number, text in source_context(shown, line):
        css = ' class="error"' if number == line else ""
        rows.append(f'<tr{css}><td class="no">{number}</td><td>{esc(text)}</td></tr>')
    if rows:
        source = f'<table class="source">{"".join(rows)}</table>'
    elif file and shown is None:
        source = '<p class="note">(the file lies outside the watched roots: its source is not shown)</p>'
    else:
        source = '<p class="note">(source not available)</p>'
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(kind)} in {esc(module)} · hotmod</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{esc(kind)}: {esc(message)}</h1>
<p>{intro}
<span class="where">{esc(where)}</span>.</p>
<p class="note">{esc(note)}</p>
<h2>Source</h2>
{source}
<h2>Traceback</h2>
<pre>{esc(traceback)}</pre>
</body>
</html>
"""
    return page.encode("utf-8")


def render_restart_page(restart: Any, *, generation: int) -> bytes:
    """The debug page served while a restart-only edit waits for a process restart
    that this server cannot make (``HotReload`` inside gunicorn or waitress)."""
    esc = html.escape
    reason = str(restart.get("reason", "") or "")
    files = "".join(f"<li class=\"where\">{esc(str(f))}</li>" for f in restart.get("files", ()))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Restart needed · hotmod</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Restart needed</h1>
<p>These files changed, and their change cannot be loaded into the running process:</p>
<ul>{files}</ul>
<p>Why: {esc(reason)}</p>
<p class="note">Generation {generation} is still loaded, with the code from before this
edit. Restart the server to serve it (<code>hotmod serve</code> restarts itself).</p>
</body>
</html>
"""
    return page.encode("utf-8")
