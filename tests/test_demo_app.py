"""The demo app through werkzeug's test client, on SQLite, without a reloader.

Each test runs a fresh copy of ``demo_app/`` in ``tmp_path``, so the SQLite
file is the test's own (``<tmp>/proj/var/demo.sqlite3``) and the repository's
``var/`` is never touched. The last tests drive the clone and purge hooks by
hand, the way the engine calls them, to pin down the hook contract of
``demo_app/db.py`` independently of the engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psycopg_pool  # noqa: F401
import pytest
import werkzeug.routing  # noqa: F401
from support import demo_copy
from werkzeug.test import Client

# psycopg_pool and werkzeug.routing are imported above although no test names
# them: the ``project`` fixture's ``clean_modules`` drops every module first
# imported during a test, and would re-import them for each test.


@dataclass
class Demo:
    root: Path
    client: Client
    db: ModuleType
    views: ModuleType


@pytest.fixture
def demo(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    """A fresh copy of the demo, imported from ``project``, on SQLite."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project):
        wsgi = importlib.import_module("demo_app.wsgi")
        db = sys.modules["demo_app.db"]
        assert Path(db.__file__).is_relative_to(project)
        try:
            yield Demo(project, Client(wsgi.app), db, sys.modules["demo_app.views"])
        finally:
            db.__mp_purge__()


def footer_value(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert match, f"no #{element_id} in the page"
    return match.group(1)


def test_index_shows_the_form_and_says_there_are_no_notes_yet(demo: Demo) -> None:
    response = demo.client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert '<form class="add" method="post" action="/notes">' in response.text
    assert "No notes yet" in response.text


def test_adding_a_note_with_the_form_redirects_to_the_list_that_shows_it(demo: Demo) -> None:
    response = demo.client.post("/notes", data={"body": "  buy milk ", "author": "ann"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = demo.client.get("/").text
    assert "<p>buy milk</p>" in page
    assert "ann ·" in page
    assert "No notes yet" not in page


def test_notes_are_listed_newest_first(demo: Demo) -> None:
    for body in ("first", "second", "third"):
        demo.client.post("/notes", data={"body": body})
    page = demo.client.get("/").text
    assert page.index("third") < page.index("second") < page.index("first")


def test_a_blank_note_is_refused_with_400_and_the_draft_author_is_kept(demo: Demo) -> None:
    response = demo.client.post("/notes", data={"body": "   ", "author": "bob"})
    assert response.status_code == 400
    assert 'role="alert">a note needs some text<' in response.text
    assert 'value="bob"' in response.text
    assert demo.client.get("/api/notes").json == {"notes": []}


def test_a_note_that_is_too_long_is_refused_and_its_draft_kept(demo: Demo) -> None:
    body = "x" * (demo.db.MAX_NOTE_LENGTH + 1)
    response = demo.client.post("/notes", data={"body": body})
    assert response.status_code == 400
    assert f"at most {demo.db.MAX_NOTE_LENGTH} characters" in response.text
    assert f">{body}</textarea>" in response.text


def test_note_text_and_author_are_escaped_in_the_page(demo: Demo) -> None:
    demo.client.post("/notes", data={"body": "<script>alert(1)</script>", "author": '"><b>'})
    page = demo.client.get("/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;b&gt;" in page


def test_deleting_a_note_with_the_form_removes_it_and_a_second_delete_is_404(
    demo: Demo,
) -> None:
    note = demo.client.post("/api/notes", json={"body": "temporary"}).json
    response = demo.client.post(f"/notes/{note['id']}/delete")
    assert response.status_code == 303
    assert "temporary" not in demo.client.get("/").text
    again = demo.client.post(f"/notes/{note['id']}/delete")
    assert again.status_code == 404
    assert f"There is no note {note['id']}" in again.text
    assert 'id="hotmod-footer"' in again.text


def test_json_api_adds_reads_lists_and_deletes_a_note(demo: Demo) -> None:
    created = demo.client.post("/api/notes", json={"body": "from the API", "author": "cli"})
    assert created.status_code == 201
    note = created.json
    assert note["body"] == "from the API"
    assert note["author"] == "cli"
    assert created.headers["Location"] == f"/api/notes/{note['id']}"
    assert demo.client.get(created.headers["Location"]).json == note
    assert demo.client.get("/api/notes").json == {"notes": [note]}
    assert demo.client.delete(f"/api/notes/{note['id']}").status_code == 204
    missing = demo.client.get(f"/api/notes/{note['id']}")
    assert missing.status_code == 404
    assert missing.json["code"] == 404
    assert demo.client.delete(f"/api/notes/{note['id']}").status_code == 404


def test_json_api_names_an_anonymous_author(demo: Demo) -> None:
    assert demo.client.post("/api/notes", json={"body": "hi"}).json["author"] == "anonymous"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "send a JSON object"),
        (json.dumps(["a", "list"]), "send a JSON object"),
        (json.dumps({"body": ""}), "a note needs some text"),
        (json.dumps({"body": 42}), "a note needs some text"),
        (json.dumps({"body": "ok", "author": ["x"]}), "the author must be text"),
    ],
)
def test_json_api_refuses_bad_input_with_400_and_a_sentence(demo: Demo, payload: str, message: str) -> None:
    response = demo.client.post("/api/notes", data=payload, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json["error"]
    assert demo.client.get("/api/notes").json == {"notes": []}


def test_export_streams_every_note_oldest_first_as_ndjson(demo: Demo) -> None:
    bodies = [f"note {i}" for i in range(5)]
    for body in bodies:
        demo.client.post("/api/notes", json={"body": body})
    response = demo.client.get("/api/notes.ndjson")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["body"] for line in lines] == bodies


def test_an_unknown_page_is_a_404_page_with_the_footer(demo: Demo) -> None:
    response = demo.client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<h1>404 Not Found</h1>" in response.text
    assert 'id="hotmod-footer"' in response.text


def test_an_unknown_api_path_is_a_json_404(demo: Demo) -> None:
    response = demo.client.get("/api/nothing")
    assert response.status_code == 404
    assert response.json["code"] == 404


def test_a_wrong_method_is_405_and_names_the_allowed_ones(demo: Demo) -> None:
    response = demo.client.delete("/")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_footer_shows_the_generation_from_the_environ_the_pid_and_the_pool(demo: Demo) -> None:
    page = demo.client.get("/", environ_overrides={"hotmod.generation": 7}).text
    assert footer_value(page, "generation") == "7"
    assert footer_value(page, "pid") == str(__import__("os").getpid())
    assert footer_value(page, "pool-id") == str(id(demo.db.pool))
    assert footer_value(page, "pool-age") == "0 s" or footer_value(page, "pool-age").endswith(" s")
    assert "no server backends" in footer_value(page, "connections")


def test_footer_says_unknown_when_no_generation_is_in_the_environ(demo: Demo) -> None:
    assert footer_value(demo.client.get("/").text, "generation") == "unknown"


def test_status_reports_the_sqlite_pool_and_the_generation(demo: Demo) -> None:
    status = demo.client.get("/api/status", environ_overrides={"hotmod.generation": 3}).json
    assert status["generation"] == 3
    assert status["backend"] == "sqlite"
    assert status["pool_id"] == id(demo.db.pool)
    assert status["pool_created_at"] == demo.db.created_at
    assert status["connections"] is None
    assert status["views_loaded_at"] == demo.views.loaded_at


def test_the_database_file_lives_under_var_outside_the_package(demo: Demo) -> None:
    demo.client.post("/api/notes", json={"body": "persisted"})
    path = demo.root / "var" / "demo.sqlite3"
    assert Path(demo.db.SQLITE_PATH) == path
    assert not path.is_relative_to(demo.root / "demo_app")
    with sqlite3.connect(path) as conn:
        assert conn.execute("select body from notes").fetchall() == [("persisted",)]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59.9, "59 s"), (61, "1 min 1 s"), (3599, "59 min 59 s"), (7500, "2 h 5 min")],
)
def test_ages_read_as_short_durations(demo: Demo, seconds: float, shown: str) -> None:
    render = sys.modules["demo_app.render"]
    assert render.ago(seconds) == shown


def fresh_instance(old: ModuleType, *, clone: bool) -> ModuleType:
    """Load ``old``'s file into a new, empty module object, as the engine does."""
    spec = importlib.util.spec_from_file_location(old.__name__, old.__file__)
    assert spec is not None and spec.loader is not None
    new = importlib.util.module_from_spec(spec)
    if clone:
        old.__mp_clone__(new)
    spec.loader.exec_module(new)
    return new


def test_the_clone_hook_hands_pool_lock_and_creation_time_to_the_new_instance(
    demo: Demo,
) -> None:
    old = demo.db
    new = fresh_instance(old, clone=True)
    assert new is not old
    assert new.pool is old.pool
    assert new.lock is old.lock
    assert new.created_at == old.created_at
    new.add_note("written through the new instance")
    assert [n["body"] for n in old.list_notes()] == ["written through the new instance"]


def test_the_clone_hook_carries_the_pool_across_twenty_generations(demo: Demo) -> None:
    instances = [demo.db]
    for _ in range(20):
        instances.append(fresh_instance(instances[-1], clone=True))
    assert {id(instance.pool) for instance in instances} == {id(demo.db.pool)}
    assert len({id(instance) for instance in instances}) == 21


def test_without_clone_a_new_instance_opens_its_own_connection_on_the_same_data(
    demo: Demo,
) -> None:
    demo.db.add_note("before")
    new = fresh_instance(demo.db, clone=False)
    try:
        assert new.pool is not demo.db.pool
        # The schema is created again, idempotently, and the rows are still there.
        assert [n["body"] for n in new.list_notes()] == ["before"]
    finally:
        new.__mp_purge__()


def test_purge_closes_the_connection(demo: Demo) -> None:
    new = fresh_instance(demo.db, clone=False)
    new.__mp_purge__()
    with pytest.raises(sqlite3.ProgrammingError):
        new.pool.execute("select 1")
    assert demo.db.list_notes() == []
