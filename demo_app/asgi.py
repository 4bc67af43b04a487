"""The demo's ASGI face: the same notes, served by FastAPI (``make run-asgi``).

``hotmod serve demo_app.asgi:app`` serves this module's ``app``. It reads and
writes through :mod:`demo_app.db`, the very module the WSGI face uses, so its
pool is the one that crosses every reload by ``db.py``'s ``__mp_clone__``.

What the ASGI face adds is what ASGI adds: connections that last. A live
feed of new notes, as Server-Sent Events (``GET /api/notes/stream``) and over
a WebSocket (``/ws/notes``), stays with the generation it began under for its
whole life, while requests that start after an edit get the new code at once.

Each generation's ``app`` runs its own lifespan. Startup starts the app's
:class:`Feed`, one task that polls the database for new notes and hands each
to the app's open streams; shutdown, which hotmod runs once the generation
has drained, stops it. The task belongs to the app and not to the module on
purpose: a task started at import would run the first instance's code
forever, old code that hotmod would rightly call stale. Every startup and
shutdown is written in :data:`lifespans`, a list this module carries across
reloads the way ``db.py`` carries its pool (``GET /api/lifespans``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Query, Request, Response, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

from demo_app import db, render

HEADING = "hotmod notes, over ASGI"
TAGLINE = "Edit demo_app/asgi.py and save: this page follows by itself. Watch the footer."
#: The SSE event name (and WebSocket ``event``) of a new note. Rename it while a
#: stream is open: that stream keeps its old name, a new one gets the new name.
NOTE_EVENT = "note"
#: Seconds between two looks at the database for new notes.
POLL_INTERVAL = 0.2
#: Seconds of silence after which a stream sends an SSE comment, so that proxies
#: and clients see a live connection.
KEEPALIVE = 15.0

#: Where the hotmod middleware puts the number of the generation serving a connection.
GENERATION_KEY = "hotmod.generation"

log = logging.getLogger("demo_app.asgi")

# When this instance of the module ran: a reload makes a new one.
loaded_at = time.time()

# One list per process: a record per app lifespan, {"app", "started_at", "stopped_at"},
# carried to each new instance by __mp_clone__ (plain data only, like db.py's pool).
if "lifespans" not in globals():
    lifespans: list[dict[str, Any]] = []


def __mp_clone__(module: ModuleType) -> None:
    """Hand the lifespan records to the new instance of this module."""
    vars(module).update(lifespans=lifespans)


class Feed:
    """New notes for one app's open streams: a task polls the database, and every
    subscriber has a queue of its own that receives each note once."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[db.Note]] = set()
        self._last_id = 0
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self._task is not None and not self._task.done() else "stopped"
        return f"<Feed {state}, {len(self._queues)} subscriber(s), after note {self._last_id}>"

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def start(self) -> None:
        self._last_id = await run_in_threadpool(db.latest_note_id)
        self._task = asyncio.create_task(self._poll(), name="demo_app feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[db.Note]]:
        """A queue that receives every note found from now on, until the block ends."""
        queue: asyncio.Queue[db.Note] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                notes = await run_in_threadpool(db.notes_after, self._last_id)
            except Exception:
                # A database that went away must not end the feed: the next poll retries.
                log.exception("the notes feed could not read the database")
                continue
            for note in notes:
                self._last_id = note["id"]
                for queue in self._queues:
                    queue.put_nowait(note)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start this app's feed before it serves; stop it once its last connection ended."""
    record: dict[str, Any] = {"app": len(lifespans) + 1, "started_at": time.time(), "stopped_at": None}
    app.state.number = record["app"]
    app.state.feed = Feed()
    await app.state.feed.start()
    lifespans.append(record)
    try:
        yield
    finally:
        await app.state.feed.stop()
        record["stopped_at"] = time.time()


app = FastAPI(title=HEADING, lifespan=lifespan)


class NoteIn(BaseModel):
    body: str
    author: str | None = None


def generation_of(connection: Request | WebSocket) -> int | None:
    generation = connection.scope.get(GENERATION_KEY)
    return int(generation) if generation is not None else None


def status(request: Request) -> dict[str, Any]:
    """Which code, which app and which pool served this request."""
    return {
        "generation": generation_of(request),
        "pid": os.getpid(),
        "views_loaded_at": loaded_at,
        "app": request.app.state.number,
        "streams": request.app.state.feed.subscribers,
        **db.describe(),
    }


def notes_page(
    request: Request, *, error: str | None = None, body: str = "", author: str = ""
) -> HTMLResponse:
    content = render.notes(
        db.list_notes(),
        heading=HEADING,
        tagline=TAGLINE,
        max_length=db.MAX_NOTE_LENGTH,
        error=error,
        draft_body=body,
        draft_author=author,
    )
    page = render.page(title=HEADING, body=content, footer=render.footer(status(request)))
    return HTMLResponse(page, status_code=400 if error else 200)


# -- the page and its form -------------------------------------------------------------


@app.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return notes_page(request)


@app.post("/notes", response_model=None)
async def add_note_from_form(request: Request) -> Response:
    # The form is urlencoded: read it without python-multipart, which FastAPI's Form needs.
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    body, author = form.get("body", [""])[0], form.get("author", [""])[0]
    try:
        await run_in_threadpool(db.add_note, body, author)
    except ValueError as exc:
        return await run_in_threadpool(notes_page, request, error=str(exc), body=body, author=author)
    return RedirectResponse("/", status_code=303)


@app.post("/notes/{note_id:int}/delete")
def delete_note_from_form(note_id: int) -> RedirectResponse:
    if not db.delete_note(note_id):
        raise HTTPException(404, f"There is no note {note_id}; it may have been deleted already.")
    return RedirectResponse("/", status_code=303)


# -- the JSON API ------------------------------------------------------------------------


@app.get("/api/notes")
def list_notes() -> dict[str, list[dict[str, Any]]]:
    return {"notes": [dict(note) for note in db.list_notes()]}


@app.post("/api/notes", status_code=201)
def add_note(note: NoteIn, response: Response) -> dict[str, Any]:
    try:
        added = db.add_note(note.body, note.author)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    response.headers["Location"] = f"/api/notes/{added['id']}"
    return dict(added)


@app.get("/api/notes/{note_id:int}")
def get_note(note_id: int) -> dict[str, Any]:
    note = db.get_note(note_id)
    if note is None:
        raise HTTPException(404, f"There is no note {note_id}.")
    return dict(note)


@app.delete("/api/notes/{note_id:int}", status_code=204)
def delete_note(note_id: int) -> None:
    if not db.delete_note(note_id):
        raise HTTPException(404, f"There is no note {note_id}.")


@app.get("/api/status")
def api_status(request: Request) -> dict[str, Any]:
    return status(request)


@app.get("/api/lifespans")
def api_lifespans() -> dict[str, list[dict[str, Any]]]:
    """Every app lifespan of this process: when it started, and when it stopped."""
    return {"lifespans": lifespans}


# -- the live feed ---------------------------------------------------------------------


def server_sent(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@app.get("/api/notes/stream")
async def stream_notes(
    request: Request, limit: int | None = Query(None, ge=1, description="end after this many notes")
) -> StreamingResponse:
    """New notes as Server-Sent Events: a ``hello`` first, then one event per note."""
    feed: Feed = request.app.state.feed
    served_by = {"generation": generation_of(request), "app": request.app.state.number}

    async def events() -> AsyncIterator[str]:
        with feed.subscription() as queue:
            yield server_sent("hello", served_by)
            sent = 0
            while limit is None or sent < limit:
                try:
                    note = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                yield server_sent(NOTE_EVENT, {"note": note, **served_by})
                sent += 1

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@app.websocket("/ws/notes")
async def notes_socket(websocket: WebSocket) -> None:
    """The feed both ways: each note found is sent as JSON, and each JSON object
    received (``{"body": ..., "author": ...}``) is added as a note."""
    await websocket.accept()
    feed: Feed = websocket.app.state.feed
    served_by = {"generation": generation_of(websocket), "app": websocket.app.state.number}

    async def forward(queue: asyncio.Queue[db.Note]) -> None:
        while True:
            note = await queue.get()
            await websocket.send_json({"event": NOTE_EVENT, "note": note, **served_by})

    with feed.subscription() as queue:
        await websocket.send_json({"event": "hello", **served_by})
        forwarding = asyncio.create_task(forward(queue))
        try:
            async for message in websocket.iter_json():
                fields = message if isinstance(message, dict) else {}
                try:
                    note = await run_in_threadpool(db.add_note, fields.get("body"), fields.get("author"))
                except ValueError as exc:
                    await websocket.send_json({"event": "error", "error": str(exc), **served_by})
                else:
                    await websocket.send_json({"event": "added", "note": note, **served_by})
        finally:
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
