"""HTML for the demo, from plain :class:`string.Template` strings.

Every value that reaches a template passes through :func:`html.escape`
here, at the point where it is interpolated; functions return finished HTML
fragments, which callers place into other templates unchanged. This module
imports nothing from the app, so a reload of :mod:`demo_app.db` leaves it be.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from string import Template
from typing import Any

STYLE = """
body { font: 16px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main { max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; }
.tagline { color: #5b6475; margin-top: 0; }
form.add { display: grid; gap: .5rem; margin: 1.5rem 0; }
textarea, input { font: inherit; padding: .4rem; border: 1px solid #c5cad3; border-radius: 4px; }
button { font: inherit; padding: .35rem .9rem; cursor: pointer; }
.error { color: #a8071a; background: #fff1f0; padding: .5rem; border-radius: 4px; }
ul.notes { list-style: none; padding: 0; }
ul.notes li { background: #fff; border: 1px solid #e1e4ea; border-radius: 6px;
              padding: .75rem 1rem; margin-bottom: .5rem; }
.meta { color: #5b6475; font-size: .85rem; display: flex; justify-content: space-between; }
.meta form { display: inline; }
footer { max-width: 44rem; margin: 2rem auto; padding: .75rem 1rem; font-size: .85rem;
         color: #5b6475; border-top: 1px solid #d5d9e0; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0; }
footer dt { font-weight: 600; }
footer dd { margin: 0; font-family: ui-monospace, monospace; }
"""

LAYOUT = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<main>
$body
</main>
$footer
</body>
</html>
"""
)

NOTES = Template(
    """<h1>$heading</h1>
<p class="tagline">$tagline</p>
$error
<form class="add" method="post" action="/notes">
  <textarea name="body" rows="3" maxlength="$max_length" placeholder="Write a note"
    required>$draft_body</textarea>
  <input name="author" placeholder="Your name (optional)" value="$draft_author">
  <button type="submit">Add note</button>
</form>
$notes
"""
)

NOTE = Template(
    """<li id="note-$id">
  <p>$body</p>
  <div class="meta"><span>$author · $created_at</span>
  <form method="post" action="/notes/$id/delete"><button type="submit">Delete</button></form>
  </div>
</li>"""
)

ERROR = Template(
    """<h1>$code $name</h1>
<p>$description</p>
<p><a href="/">Back to the notes</a></p>
"""
)

FOOTER = Template(
    """<footer id="hotmod-footer">
<dl>
  <dt>generation</dt><dd id="generation">$generation</dd>
  <dt>process</dt><dd id="pid">$pid</dd>
  <dt>views loaded</dt><dd id="views-age">$views_age ago</dd>
  <dt>pool</dt><dd id="pool">$backend pool <span id="pool-id">$pool_id</span>,
    created <span id="pool-age">$pool_age</span> ago</dd>
  <dt>connections</dt><dd id="connections">$connections</dd>
</dl>
</footer>"""
)


def ago(seconds: float) -> str:
    """A short human duration: ``'4 s'``, ``'3 min 12 s'``, ``'2 h 5 min'``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def page(*, title: str, body: str, footer: str) -> str:
    """A whole HTML document around ``body`` (already HTML) and ``footer``."""
    return LAYOUT.substitute(title=escape(title), style=STYLE, body=body, footer=footer)


def notes(
    items: Sequence[Mapping[str, Any]],
    *,
    heading: str,
    tagline: str,
    max_length: int,
    error: str | None = None,
    draft_body: str = "",
    draft_author: str = "",
) -> str:
    """The notes page body: the add form (with a draft and an error) and the list."""
    if items:
        listing = '<ul class="notes">\n' + "\n".join(note(item) for item in items) + "\n</ul>"
    else:
        listing = '<p class="empty">No notes yet: add the first one.</p>'
    return NOTES.substitute(
        heading=escape(heading),
        tagline=escape(tagline),
        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        max_length=max_length,
        draft_body=escape(draft_body),
        draft_author=escape(draft_author),
        notes=listing,
    )


def note(item: Mapping[str, Any]) -> str:
    return NOTE.substitute(
        id=item["id"],
        body=escape(item["body"]),
        author=escape(item["author"]),
        created_at=escape(item["created_at"]),
    )


def error(code: int, name: str, description: str) -> str:
    return ERROR.substitute(code=code, name=escape(name), description=escape(description))


def footer(info: Mapping[str, Any]) -> str:
    """The footer that makes a reload visible: generation, pid, pool identity and age."""
    generation = info.get("generation")
    connections = info.get("connections")
    if connections is None:
        shown_connections = "SQLite: one connection, no server backends"
    else:
        shown_connections = (
            f"{connections} open in pg_stat_activity for {info.get('application_name')}"
            f" (pool max {info.get('pool_max')})"
        )
    now = time.time()
    return FOOTER.substitute(
        generation=escape(str(generation)) if generation is not None else "unknown",
        pid=info["pid"],
        views_age=ago(now - info["views_loaded_at"]),
        backend=escape(str(info["backend"])),
        pool_id=info["pool_id"],
        pool_age=ago(now - info["pool_created_at"]),
        connections=escape(shown_connections),
    )
