"""The demo's pages and JSON API: a small guestbook of notes.

Edit anything here while ``make run`` serves the app (``HEADING`` is the
obvious candidate) and save: the open page follows by itself, and its footer shows a new generation
and a fresh "views loaded" time, while the pool's identity, its age and the
connection count stay as they were: the pool lives in :mod:`demo_app.db` and
crossed the reload through its ``__mp_clone__`` hook.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from demo_app import db, render

HEADING = "hotmod notes"
TAGLINE = "Edit demo_app/views.py and save: this page follows by itself. Watch the footer."

#: Where the hotmod middleware puts the number of the generation serving the request.
GENERATION_KEY = "hotmod.generation"

# When this instance of the module ran: a reload of the views makes a new one.
loaded_at = time.time()

url_map = Map(
    [
        Rule("/", endpoint="index", methods=["GET"]),
        Rule("/notes", endpoint="add_note", methods=["POST"]),
        Rule("/notes/<int:note_id>/delete", endpoint="delete_note", methods=["POST"]),
        Rule("/api/notes", endpoint="api_list", methods=["GET"]),
        Rule("/api/notes", endpoint="api_add", methods=["POST"]),
        Rule("/api/notes/<int:note_id>", endpoint="api_get", methods=["GET"]),
        Rule("/api/notes/<int:note_id>", endpoint="api_delete", methods=["DELETE"]),
        Rule("/api/notes.ndjson", endpoint="api_export", methods=["GET"]),
        Rule("/api/status", endpoint="api_status", methods=["GET"]),
    ]
)


def status(request: Request) -> dict[str, Any]:
    """Which code and which pool served this request."""
    generation = request.environ.get(GENERATION_KEY)
    return {
        "generation": int(generation) if generation is not None else None,
        "pid": os.getpid(),
        "views_loaded_at": loaded_at,
        **db.describe(),
    }


def html(request: Request, body: str, *, title: str = HEADING, code: int = 200) -> Response:
    content = render.page(title=title, body=body, footer=render.footer(status(request)))
    return Response(content, status=code, mimetype="text/html")


def as_json(data: Any, *, code: int = 200) -> Response:
    return Response(json.dumps(data) + "\n", status=code, mimetype="application/json")


def notes_page(
    request: Request, *, error: str | None = None, body: str = "", author: str = ""
) -> Response:
    content = render.notes(
        db.list_notes(),
        heading=HEADING,
        tagline=TAGLINE,
        max_length=db.MAX_NOTE_LENGTH,
        error=error,
        draft_body=body,
        draft_author=author,
    )
    return html(request, content, code=400 if error else 200)


def index(request: Request) -> Response:
    return notes_page(request)


def add_note(request: Request) -> Response:
    body = request.form.get("body", "")
    author = request.form.get("author", "")
    try:
        db.add_note(body, author)
    except ValueError as exc:
        return notes_page(request, error=str(exc), body=body, author=author)
    return redirect("/", code=303)


def delete_note(request: Request, note_id: int) -> Response:
    if not db.delete_note(note_id):
        raise NotFound(f"There is no note {note_id}; it may have been deleted already.")
    return redirect("/", code=303)


def api_list(request: Request) -> Response:
    return as_json({"notes": db.list_notes()})


def api_add(request: Request) -> Response:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return as_json({"error": 'send a JSON object like {"body": "..."}'}, code=400)
    try:
        note = db.add_note(payload.get("body"), payload.get("author"))
    except ValueError as exc:
        return as_json({"error": str(exc)}, code=400)
    response = as_json(note, code=201)
    response.headers["Location"] = f"/api/notes/{note['id']}"
    return response


def api_get(request: Request, note_id: int) -> Response:
    note = db.get_note(note_id)
    if note is None:
        raise NotFound(f"There is no note {note_id}.")
    return as_json(note)


def api_delete(request: Request, note_id: int) -> Response:
    if not db.delete_note(note_id):
        raise NotFound(f"There is no note {note_id}.")
    return Response(status=204)


def api_export(request: Request) -> Response:
    """Every note as one JSON object per line, streamed while the rows are read."""

    def lines() -> Iterator[str]:
        # Closing the response closes this generator, and with it the rows'
        # generator, which gives its pooled connection back at once.
        with closing(db.export_notes()) as notes:
            for note in notes:
                yield json.dumps(note) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")


def api_status(request: Request) -> Response:
    return as_json(status(request))


def error_response(request: Request, exc: HTTPException) -> Response:
    """Errors as JSON under ``/api/``, as a page with the footer everywhere else."""
    code = exc.code or 500
    if code < 400:  # routing redirects, such as a missing trailing slash
        return exc.get_response(request.environ)  # type: ignore[return-value]
    if request.path.startswith("/api/"):
        response = as_json({"error": exc.description, "code": code}, code=code)
    else:
        body = render.error(code, exc.name, exc.description or "")
        response = html(request, body, title=f"{code} {exc.name}", code=code)
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            response.headers[name] = value
    return response


endpoints: dict[str, Callable[..., Response]] = {
    "index": index,
    "add_note": add_note,
    "delete_note": delete_note,
    "api_list": api_list,
    "api_add": api_add,
    "api_get": api_get,
    "api_delete": api_delete,
    "api_export": api_export,
    "api_status": api_status,
}
