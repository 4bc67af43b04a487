"""The demo's ASGI face (``demo_app/asgi.py``), on SQLite, over real sockets.

The first tests serve a fresh copy of the demo on uvicorn in a thread of this
process, without hotmod: the pages, the API, the live feed (Server-Sent Events
and a WebSocket) and the lifespan. The last ones run ``hotmod serve
demo_app.asgi:app`` on a copy of the demo and edit its files: an edit shows in
the same process with the same database connection, a stream or a socket
opened before the edit stays on its generation to its end, and each
generation's app runs its own lifespan startup and, once drained, shutdown.

Each test's copy of the demo lives in ``tmp_path`` (its database is
``<tmp>/proj/var/demo.sqlite3``), so the repository is never edited.
"""

from __future__ import annotations

import http.client
import importlib
import itertools
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import fastapi  # noqa: F401  (see the note below the imports)
import psycopg_pool  # noqa: F401
import pydantic  # noqa: F401
import pytest
import uvicorn
from support import Reply, Served, call, demo_copy, hotmod_serving, replace, wait_until
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websocket_connect

from hotmod.middleware import HotReload

# fastapi, pydantic and psycopg_pool are imported above although no test names them:
# the ``project`` fixture's ``clean_modules`` drops every module first imported
# during a test, and would re-import the demo's dependencies for each test.

ASGI_TARGET = "demo_app.asgi:app"
#: Bound of every read from a stream or a socket.
READ_TIMEOUT = 15.0


# -- clients for the live feed (the integration tests use them too) ---------------------------


class EventStream:
    """A Server-Sent Events response from 127.0.0.1:``port``, read event by event;
    each read waits at most ``timeout`` seconds."""

    def __init__(self, port: int, path: str, *, timeout: float = READ_TIMEOUT) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self._conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self.response = self._conn.getresponse()
        assert self.response.status == 200, self.response.read()
        assert self.response.headers["Content-Type"].startswith("text/event-stream")

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def next_event(self) -> tuple[str, dict[str, Any]] | None:
        """The next ``(event name, decoded data)``; None once the server ended the stream."""
        event, data = "message", []
        while True:
            raw = self.response.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    return event, json.loads("\n".join(data))
                continue
            if line.startswith(":"):  # a comment: the keep-alive
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    def expect(self, event: str) -> dict[str, Any]:
        received = self.next_event()
        assert received is not None, f"the stream ended before a {event!r} event"
        assert received[0] == event, f"expected a {event!r} event, got {received}"
        return received[1]

    def close(self) -> None:
        self._conn.close()


@contextmanager
def notes_socket(port: int) -> Iterator[ClientConnection]:
    with websocket_connect(f"ws://127.0.0.1:{port}/ws/notes", open_timeout=READ_TIMEOUT) as socket:
        yield socket


def receive(socket: ClientConnection, event: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=READ_TIMEOUT))
    assert message["event"] == event, f"expected a {event!r} message, got {message}"
    return message


def feed_event(stream: EventStream, event: str, body: str) -> dict[str, Any]:
    """The first ``event`` of ``stream`` for the note ``body`` (the feed may also send
    notes added just before the stream subscribed)."""
    while True:
        data = stream.expect(event)
        if data["note"]["body"] == body:
            return data


def socket_event(socket: ClientConnection, event: str, body: str) -> dict[str, Any]:
    while True:
        message = receive(socket, event)
        if message["note"]["body"] == body:
            return message


def add_note(port: int, body: str) -> dict[str, Any]:
    reply = call(port, "POST", "/api/notes", {"body": body})
    assert reply.status == 201, reply.body
    note: dict[str, Any] = reply.json()
    return note


def api_status(port: int) -> Reply:
    reply = call(port, "GET", "/api/status")
    assert reply.status == 200, reply.body
    return reply


def lifespans(port: int) -> dict[int, dict[str, Any]]:
    """The demo's lifespan records, by app number."""
    records = call(port, "GET", "/api/lifespans").json()["lifespans"]
    return {record["app"]: record for record in records}


# -- the app on uvicorn, without hotmod ---------------------------------------------------------


@contextmanager
def uvicorn_serving(app: Any, port: int) -> Iterator[uvicorn.Server]:
    """``app`` on uvicorn in a thread of this process at 127.0.0.1:``port``, lifespan
    and all; stopped, and its lifespan shut down, on exit."""
    # h11, uvicorn's protocol without extras: with httptools (uvicorn[standard], which
    # the dev extra's fastapi-cli brings), the second server started in one process
    # closes every WebSocket handshake, with hotmod or without (uvicorn 0.55).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"


@dataclass
class Demo:
    port: int
    asgi: ModuleType
    db: ModuleType
    server: uvicorn.Server


@pytest.fixture
def demo(project: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    """A fresh copy of the demo's ASGI face on SQLite, served by uvicorn on ``port``."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project):
        asgi = importlib.import_module("demo_app.asgi")
        db = sys.modules["demo_app.db"]
        assert Path(db.__file__).is_relative_to(project)
        try:
            with uvicorn_serving(asgi.app, port) as server:
                yield Demo(port, asgi, db, server)
        finally:
            db.__mp_purge__()


def test_the_page_shows_the_notes_and_the_footer_with_the_sqlite_pool(demo: Demo) -> None:
    add_note(demo.port, "<b>bold</b> claim")
    reply = call(demo.port, "GET", "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert f"<h1>{demo.asgi.HEADING}</h1>" in reply.text
    assert "<p>&lt;b&gt;bold&lt;/b&gt; claim</p>" in reply.text
    assert f'<span id="pool-id">{id(demo.db.pool)}</span>' in reply.text
    assert f'<dd id="pid">{os.getpid()}</dd>' in reply.text


def test_the_form_adds_a_note_and_redirects_and_refuses_a_blank_one_keeping_the_author(
    demo: Demo,
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=READ_TIMEOUT)
    try:
        conn.request("POST", "/notes", body="body=buy+milk&author=ann", headers=form)
        added = conn.getresponse()
        added.read()
        assert (added.status, added.headers["Location"]) == (303, "/")
        conn.request("POST", "/notes", body="body=++&author=bob", headers=form)
        refused = conn.getresponse()
        page = refused.read().decode()
    finally:
        conn.close()
    assert refused.status == 400
    assert 'role="alert">a note needs some text<' in page
    assert 'value="bob"' in page
    assert [note["body"] for note in call(demo.port, "GET", "/api/notes").json()["notes"]] == ["buy milk"]


def test_the_json_api_adds_reads_lists_and_deletes_a_note(demo: Demo) -> None:
    created = call(demo.port, "POST", "/api/notes", {"body": "from the API", "author": "cli"})
    assert created.status == 201
    note = created.json()
    assert (note["body"], note["author"]) == ("from the API", "cli")
    assert created.headers["Location"] == f"/api/notes/{note['id']}"
    assert call(demo.port, "GET", created.headers["Location"]).json() == note
    assert call(demo.port, "GET", "/api/notes").json() == {"notes": [note]}
    assert call(demo.port, "DELETE", f"/api/notes/{note['id']}").status == 204
    missing = call(demo.port, "GET", f"/api/notes/{note['id']}")
    assert missing.status == 404
    assert missing.json() == {"detail": f"There is no note {note['id']}."}


@pytest.mark.parametrize(
    ("payload", "status", "sentence"),
    [
        ({"body": "   "}, 400, "a note needs some text"),
        ({"body": "x" * 501}, 400, "at most 500 characters"),
        ({"body": 42}, 422, None),
        (["a", "list"], 422, None),
    ],
)
def test_the_json_api_refuses_bad_input(demo: Demo, payload: Any, status: int, sentence: str | None) -> None:
    reply = call(demo.port, "POST", "/api/notes", payload)
    assert reply.status == status
    if sentence is not None:
        assert sentence in reply.json()["detail"]
    assert call(demo.port, "GET", "/api/notes").json() == {"notes": []}


def test_status_names_the_app_the_pool_and_no_generation_without_hotmod(demo: Demo) -> None:
    status = api_status(demo.port).json()
    assert status["generation"] is None
    assert status["pid"] == os.getpid()
    assert status["app"] == 1
    assert status["backend"] == "sqlite"
    assert status["pool_id"] == id(demo.db.pool)
    assert status["views_loaded_at"] == demo.asgi.loaded_at


def test_a_stream_sends_hello_then_each_new_note_and_ends_after_its_limit(demo: Demo) -> None:
    with EventStream(demo.port, "/api/notes/stream?limit=2") as stream:
        assert stream.expect("hello") == {"generation": None, "app": 1}
        wait_until(lambda: api_status(demo.port).json()["streams"] == 1, what="the stream to subscribe")
        first, second = add_note(demo.port, "first"), add_note(demo.port, "second")
        assert stream.expect("note") == {"note": first, "generation": None, "app": 1}
        assert stream.expect("note") == {"note": second, "generation": None, "app": 1}
        assert stream.next_event() is None
    wait_until(lambda: api_status(demo.port).json()["streams"] == 0, what="the stream to unsubscribe")


def test_a_stream_that_the_client_leaves_unsubscribes(demo: Demo) -> None:
    with EventStream(demo.port, "/api/notes/stream") as stream:
        stream.expect("hello")
        wait_until(lambda: api_status(demo.port).json()["streams"] == 1, what="the stream to subscribe")
    # Starlette notices the disconnect at the stream's next message: a new note.
    add_note(demo.port, "wakes the stream up")
    wait_until(lambda: api_status(demo.port).json()["streams"] == 0, what="the stream to unsubscribe")


def test_the_websocket_adds_notes_and_forwards_every_new_one(demo: Demo) -> None:
    with notes_socket(demo.port) as socket:
        assert receive(socket, "hello") == {"event": "hello", "generation": None, "app": 1}
        socket.send(json.dumps({"body": "over the socket", "author": "ws"}))
        added = receive(socket, "added")["note"]
        assert (added["body"], added["author"]) == ("over the socket", "ws")
        from_api = add_note(demo.port, "over HTTP")
        assert socket_event(socket, "note", "over HTTP")["note"] == from_api
        socket.send(json.dumps({"body": ""}))
        assert receive(socket, "error")["error"] == "a note needs some text"
    wait_until(lambda: api_status(demo.port).json()["streams"] == 0, what="the socket to unsubscribe")


def test_the_lifespan_starts_the_feed_before_serving_and_stops_it_at_shutdown(
    project: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project):
        asgi = importlib.import_module("demo_app.asgi")
        try:
            with uvicorn_serving(asgi.app, port):
                [record] = asgi.lifespans
                assert record["app"] == 1 and record["stopped_at"] is None
                feed = asgi.app.state.feed
                assert "running" in repr(feed)
            assert record["stopped_at"] is not None
            assert "stopped" in repr(feed)
        finally:
            sys.modules["demo_app.db"].__mp_purge__()


# -- behind HotReload, on uvicorn in this process ----------------------------------------------


@dataclass
class HotDemo:
    """The demo copy in ``root`` behind ``hot`` (debug mode, no watcher: the test
    drives every reload), served by uvicorn on ``port``."""

    root: Path
    port: int
    hot: HotReload

    def module(self, name: str) -> ModuleType:
        """The current generation's instance of ``demo_app.<name>``."""
        return self.hot.reloader.current.modules[f"demo_app.{name}"]

    def reload(self, name: str) -> int:
        number: int = self.hot.reloader.reload(paths=[self.root / "demo_app" / f"{name}.py"])
        return number


@contextmanager
def hot_demo_serving(root: Path, port: int) -> Iterator[HotDemo]:
    """``HotReload("demo_app.asgi:app")`` on the demo copy in ``root``, on uvicorn at
    ``port``; the server's lifespan shutdown closes it, and so does the exit anyway."""
    hot = HotReload(ASGI_TARGET, watch=[root], debug=True, scan_interval=3600.0)
    try:
        assert hot.interface == "asgi"
        with uvicorn_serving(hot, port):
            yield HotDemo(root, port, hot)
    finally:
        hot.close()


@pytest.fixture
def hot_demo(project: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[HotDemo]:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project), hot_demo_serving(project, port) as served:
        yield served


def test_behind_hot_reload_100_reloads_keep_the_one_sqlite_connection_and_leak_nothing(
    hot_demo: HotDemo,
) -> None:
    first = api_status(hot_demo.port)
    assert first.generation == 1 == first.json()["generation"]
    added = [add_note(hot_demo.port, "before the reloads")]
    for i in range(100):
        name = ("asgi", "db", "render")[i % 3]
        generation = hot_demo.reload(name)
        reply = api_status(hot_demo.port)
        assert reply.generation == generation == reply.json()["generation"]
        assert reply.json()["pool_id"] == first.json()["pool_id"]
        assert reply.json()["pool_created_at"] == first.json()["pool_created_at"]
        if i % 20 == 0:
            added.append(add_note(hot_demo.port, f"after reload {i}"))
    assert hot_demo.hot.generation == 101
    assert call(hot_demo.port, "GET", "/api/notes").json()["notes"] == added[::-1]
    assert hot_demo.hot.reloader.wait_idle(60)
    stats = hot_demo.hot.reloader.stats()
    assert (stats["clone_errors"], stats["purge_errors"], stats["draining"]) == (0, 0, [])
    assert stats["leaked"] == []


def test_behind_hot_reload_a_stream_opened_before_a_reload_finishes_on_the_old_code(
    hot_demo: HotDemo,
) -> None:
    port = hot_demo.port
    with EventStream(port, "/api/notes/stream?limit=2") as old:
        hello = old.expect("hello")
        assert hello["generation"] == 1
        first = add_note(port, "before the reload")
        assert feed_event(old, "note", "before the reload") == {"note": first, **hello}

        replace(hot_demo.root / "demo_app" / "asgi.py", 'NOTE_EVENT = "note"', 'NOTE_EVENT = "note.added"')
        assert hot_demo.reload("asgi") == 2
        assert api_status(port).generation == 2
        # Generation 1 drains, and its app still runs, for as long as the stream is open.
        assert [row["generation"] for row in hot_demo.hot.reloader.stats()["draining"]] == [1]
        assert lifespans(port)[hello["app"]]["stopped_at"] is None
        with EventStream(port, "/api/notes/stream?limit=1") as new:
            new_hello = new.expect("hello")
            assert (new_hello["generation"], new_hello["app"]) == (2, hello["app"] + 1)
            # One note for both: the old stream ends with it (its limit), on the old code.
            second = add_note(port, "after the reload")
            assert feed_event(new, "note.added", "after the reload") == {"note": second, **new_hello}
            assert new.next_event() is None
        assert feed_event(old, "note", "after the reload") == {"note": second, **hello}
        assert old.next_event() is None
    wait_until(
        lambda: lifespans(port)[hello["app"]]["stopped_at"] is not None,
        what="the old app's lifespan shutdown once its stream ended",
    )
    wait_until(lambda: hot_demo.hot.reloader.stats()["draining"] == [], what="generation 1 to retire")


def test_behind_hot_reload_a_websocket_opened_before_a_reload_stays_on_its_generation(
    hot_demo: HotDemo,
) -> None:
    port = hot_demo.port
    with notes_socket(port) as old:
        hello = receive(old, "hello")
        replace(hot_demo.root / "demo_app" / "asgi.py", 'NOTE_EVENT = "note"', 'NOTE_EVENT = "note.added"')
        generation = hot_demo.reload("asgi")
        old.send(json.dumps({"body": "sent on the old socket"}))
        assert receive(old, "added")["generation"] == hello["generation"] < generation
        with notes_socket(port) as new:
            new_hello = receive(new, "hello")
            assert new_hello["generation"] == generation
            note = add_note(port, "seen by both")
            expected = {**new_hello, "event": "note.added", "note": note}
            assert socket_event(new, "note.added", "seen by both") == expected
        assert socket_event(old, "note", "seen by both") == {**hello, "event": "note", "note": note}
        assert lifespans(port)[hello["app"]]["stopped_at"] is None
    wait_until(
        lambda: lifespans(port)[hello["app"]]["stopped_at"] is not None,
        what="the old app's lifespan shutdown once its socket closed",
    )


def test_behind_hot_reload_every_app_starts_before_it_serves_and_stops_once_drained_or_at_shutdown(
    project: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project), hot_demo_serving(project, port) as demo:
        # The list crosses every reload; holding it keeps no instance of the module alive.
        records = demo.module("asgi").lifespans
        served_by = [api_status(port).json()["app"]]
        for _ in range(5):
            demo.reload("asgi")
            served_by.append(api_status(port).json()["app"])
        assert served_by == [1, 2, 3, 4, 5, 6]
        wait_until(
            lambda: all(record["stopped_at"] for record in records[:-1]),
            what="every superseded app's lifespan shutdown",
        )
        assert [record["app"] for record in records] == served_by
        assert records[-1]["stopped_at"] is None
        assert demo.module("asgi").app.state.feed.subscribers == 0
    # The server's lifespan shutdown stopped the current app too.
    assert all(record["stopped_at"] for record in records)
    for earlier, later in itertools.pairwise(records):
        # The next app started before the previous one stopped: never a gap with no app.
        assert earlier["started_at"] <= later["started_at"] <= earlier["stopped_at"]


# -- under hotmod serve -----------------------------------------------------------------------------


@pytest.fixture
def asgi_server(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """``hotmod serve demo_app.asgi:app`` on a copy of the demo, on SQLite."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project), hotmod_serving(ASGI_TARGET, project) as served:
        yield served


def edit_heading(root: Path, heading: str) -> None:
    asgi_py = root / "demo_app" / "asgi.py"
    text = asgi_py.read_text()
    current = text.split('HEADING = "', 1)[1].split('"', 1)[0]
    replace(asgi_py, f'HEADING = "{current}"', f'HEADING = "{heading}"')


def test_an_edit_is_served_by_the_same_process_on_the_same_connection(
    asgi_server: Served, project: Path
) -> None:
    port = asgi_server.port
    assert port is not None
    first = api_status(port)
    assert first.json()["pid"] == asgi_server.pid
    assert first.json()["generation"] == first.generation
    note = add_note(port, "written before the edits")

    edit_heading(project, "edited over ASGI")
    asgi_server.wait_served("/", "<h1>edited over ASGI</h1>")
    replace(project / "demo_app" / "db.py", "MAX_NOTE_LENGTH = 500", "MAX_NOTE_LENGTH = 280")
    asgi_server.wait_served("/", 'maxlength="280"')
    refused = call(port, "POST", "/api/notes", {"body": "x" * 300})
    assert (refused.status, refused.json()["detail"]) == (400, "a note is at most 280 characters")

    after = api_status(port)
    assert after.generation > first.generation
    assert after.json()["pid"] == asgi_server.pid
    assert after.json()["pool_id"] == first.json()["pool_id"]
    assert after.json()["pool_created_at"] == first.json()["pool_created_at"]
    assert after.json()["views_loaded_at"] > first.json()["views_loaded_at"]
    assert call(port, "GET", "/api/notes").json()["notes"] == [note]
    status = asgi_server.settle()
    assert status["generation"] == after.generation
    assert status["leaked"] == []
    assert asgi_server.out().count("hotmod: serving ") == 1


def test_a_stream_opened_before_an_edit_finishes_on_the_old_code(asgi_server: Served, project: Path) -> None:
    port = asgi_server.port
    assert port is not None
    with EventStream(port, "/api/notes/stream?limit=2") as old:
        hello = old.expect("hello")
        first = add_note(port, "before the edit")
        assert feed_event(old, "note", "before the edit") == {"note": first, **hello}

        replace(project / "demo_app" / "asgi.py", 'NOTE_EVENT = "note"', 'NOTE_EVENT = "note.added"')
        edit_heading(project, "renamed the event")
        asgi_server.wait_served("/", "<h1>renamed the event</h1>")
        # The old generation's app is not shut down under its open stream.
        assert lifespans(port)[hello["app"]]["stopped_at"] is None
        with EventStream(port, "/api/notes/stream?limit=1") as new:
            new_hello = new.expect("hello")
            assert new_hello["generation"] > hello["generation"]
            assert new_hello["app"] != hello["app"]
            # One note for both: the new stream has the new code, the old one the old
            # code, and ends with it (its limit).
            second = add_note(port, "after the edit")
            assert feed_event(new, "note.added", "after the edit") == {"note": second, **new_hello}
            assert new.next_event() is None
        assert feed_event(old, "note", "after the edit") == {"note": second, **hello}
        assert old.next_event() is None
    wait_until(
        lambda: lifespans(port)[hello["app"]]["stopped_at"] is not None,
        timeout=15,
        what="the old app's lifespan shutdown once its stream ended",
    )
    assert asgi_server.settle()["leaked"] == []


def test_a_websocket_opened_before_an_edit_stays_on_its_generation(
    asgi_server: Served, project: Path
) -> None:
    port = asgi_server.port
    assert port is not None
    with notes_socket(port) as old:
        hello = receive(old, "hello")
        replace(project / "demo_app" / "asgi.py", 'NOTE_EVENT = "note"', 'NOTE_EVENT = "note.added"')
        edit_heading(project, "renamed the event")
        asgi_server.wait_served("/", "<h1>renamed the event</h1>")
        old.send(json.dumps({"body": "sent on the old socket"}))
        assert receive(old, "added")["generation"] == hello["generation"]
        with notes_socket(port) as new:
            new_hello = receive(new, "hello")
            assert new_hello["generation"] > hello["generation"]
            note = add_note(port, "seen by both")
            assert socket_event(new, "note.added", "seen by both") == {**new_hello, "event": "note.added",
                                                                       "note": note}
        assert socket_event(old, "note", "seen by both") == {**hello, "event": "note", "note": note}
        assert lifespans(port)[hello["app"]]["stopped_at"] is None
    wait_until(
        lambda: lifespans(port)[hello["app"]]["stopped_at"] is not None,
        timeout=15,
        what="the old app's lifespan shutdown once its socket closed",
    )


def test_each_generation_runs_its_own_lifespan_start_before_it_serves_and_shutdown_once_drained(
    asgi_server: Served, project: Path
) -> None:
    port = asgi_server.port
    assert port is not None
    served_by = [api_status(port).json()["app"]]
    for n in range(1, 6):
        edit_heading(project, f"edit {n}")
        asgi_server.wait_served("/", f"<h1>edit {n}</h1>")
        served_by.append(api_status(port).json()["app"])
    assert len(set(served_by)) == 6, f"each edit should be served by a new app: {served_by}"
    asgi_server.settle()

    def all_superseded_stopped() -> dict[int, dict[str, Any]] | None:
        records = lifespans(port)
        return records if all(records[app]["stopped_at"] for app in served_by[:-1]) else None

    records = wait_until(all_superseded_stopped, timeout=15, what="every superseded app's lifespan shutdown")
    # One lifespan per app, none left running but the current one's.
    assert sorted(records) == sorted(served_by)
    for app in served_by[:-1]:
        assert records[app]["started_at"] < records[app]["stopped_at"]
    assert records[served_by[-1]]["stopped_at"] is None
    for earlier, later in itertools.pairwise(served_by):
        # The next app started before the previous one stopped: never a gap with no app.
        assert records[later]["started_at"] <= records[earlier]["stopped_at"]
