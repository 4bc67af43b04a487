"""The demo's ASGI face on PostgreSQL: one pool for the life of ``hotmod serve``.

Each test runs ``hotmod serve demo_app.asgi:app`` (uvicorn, a free port on
127.0.0.1) on its own copy of ``demo_app/`` in ``tmp_path`` and edits that
copy's files, as a developer would. Its pool gets a unique
``application_name`` and its own schema, so the backends counted in
``pg_stat_activity`` are this test's and nobody else's.

The ASGI face has more users of the pool than the WSGI one: besides the
requests, each live app's feed polls the database (the current generation's,
and a draining one's while its streams last), so the pool may grow from its
two connections towards its max under that overlap. What may never happen is
the WSGI demo's leak, a pool per reload (two more backends per edit): the
count stays within the one pool's bounds however many edits there are.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg_pool  # noqa: F401  (see test_demo_asgi.py: clean_modules)
import pytest
from psycopg.conninfo import make_conninfo
from support import (
    Backends,
    Sampler,
    Served,
    call,
    demo_copy,
    hotmod_serving,
    replace,
    wait_until,
    without_functions,
)
from test_demo_asgi import (
    ASGI_TARGET,
    EventStream,
    HotDemo,
    add_note,
    api_status,
    edit_heading,
    feed_event,
    hot_demo_serving,
    lifespans,
)

pytestmark = pytest.mark.postgres

# Mirrors demo_app.db; the first test checks them against what the server reports.
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 4


@dataclass
class Database:
    url: str
    dsn: str
    application_name: str
    backends: Backends


@pytest.fixture
def database(pg_dsn: str) -> Iterator[Database]:
    """A ``DATABASE_URL`` for this test only: a unique application_name and schema."""
    tag = uuid.uuid4().hex[:12]
    application_name = f"hotmod-test-asgi-{tag}"
    schema = f"hotmod_test_asgi_{tag}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
    url = make_conninfo(pg_dsn, application_name=application_name, options=f"-c search_path={schema}")
    backends = Backends(pg_dsn, application_name)
    try:
        yield Database(url, pg_dsn, application_name, backends)
    finally:
        # A failing test may leave a server behind; never let its pool outlive the test.
        backends.terminate()
        backends.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


@pytest.fixture
def asgi_server(project: Path, database: Database) -> Iterator[Served]:
    """``hotmod serve demo_app.asgi:app`` on a copy of the demo, on this test's database."""
    env = {"DATABASE_URL": database.url}
    with demo_copy(project), hotmod_serving(ASGI_TARGET, project, env=env) as served:
        yield served


@pytest.fixture
def serve_in_process(
    project: Path, database: Database, port: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HotDemo]]:
    """``start(remove_from_db=...)``: the demo copy behind ``HotReload`` on uvicorn in this
    process (the test drives the reloads), with the functions named taken out of its
    db.py first; stopped at the end of the test."""
    monkeypatch.setenv("DATABASE_URL", database.url)
    with demo_copy(project), ExitStack() as stack:

        def start(*, remove_from_db: tuple[str, ...] = ()) -> HotDemo:
            db_py = project / "demo_app" / "db.py"
            if remove_from_db:
                db_py.write_text(without_functions(db_py.read_text(), *remove_from_db))
            return stack.enter_context(hot_demo_serving(project, port))

        yield start


def edit_max_length(root: Path, length: int) -> None:
    db_py = root / "demo_app" / "db.py"
    current = db_py.read_text().split("MAX_NOTE_LENGTH = ", 1)[1].split("\n", 1)[0]
    replace(db_py, f"MAX_NOTE_LENGTH = {current}", f"MAX_NOTE_LENGTH = {length}")


def test_twenty_edits_under_hotmod_serve_keep_one_pool_and_its_backends(
    asgi_server: Served, project: Path, database: Database
) -> None:
    port = asgi_server.port
    assert port is not None
    first = api_status(port).json()
    assert first["backend"] == "postgresql"
    assert first["application_name"] == database.application_name
    assert first["pool_max"] == POOL_MAX_SIZE
    assert first["pid"] == asgi_server.pid
    baseline = database.backends.count()
    assert POOL_MIN_SIZE <= baseline <= POOL_MAX_SIZE
    notes = [add_note(port, "before the edits")]

    with Sampler(database.dsn, database.application_name) as sampler:
        for n in range(1, 21):
            if n % 2:
                edit_heading(project, f"edit {n}")
                asgi_server.wait_served("/", f"<h1>edit {n}</h1>")
            else:
                # db.py itself: its instance is new, its pool is the old instance's.
                edit_max_length(project, 500 - n)
                asgi_server.wait_served("/", f'maxlength="{500 - n}"')
            status = api_status(port).json()
            assert status["pid"] == asgi_server.pid
            assert status["pool_id"] == first["pool_id"]
            assert status["pool_created_at"] == first["pool_created_at"]
            assert database.backends.count() <= POOL_MAX_SIZE
            notes.append(add_note(port, f"after edit {n}"))

    assert sampler.samples, "the sampler never ran"
    assert max(sampler.samples) <= POOL_MAX_SIZE, f"more backends than one pool holds: {max(sampler.samples)}"
    status = asgi_server.settle()
    assert status["generation"] >= 21
    assert status["leaked"] == []
    assert POOL_MIN_SIZE <= database.backends.count() <= POOL_MAX_SIZE
    listed = call(port, "GET", "/api/notes").json()["notes"]
    assert sorted(note["id"] for note in listed) == sorted(note["id"] for note in notes)


def test_a_stream_opened_before_an_edit_of_db_finishes_on_the_old_code_and_the_same_pool(
    asgi_server: Served, project: Path, database: Database
) -> None:
    port = asgi_server.port
    assert port is not None
    pool_id = api_status(port).json()["pool_id"]
    with EventStream(port, "/api/notes/stream?limit=2") as old:
        hello = old.expect("hello")
        first = add_note(port, "before the edit")
        assert feed_event(old, "note", "before the edit") == {"note": first, **hello}

        replace(project / "demo_app" / "asgi.py", 'NOTE_EVENT = "note"', 'NOTE_EVENT = "note.added"')
        edit_max_length(project, 280)
        asgi_server.wait_served("/", 'maxlength="280"')
        new_status = api_status(port)
        assert new_status.generation > hello["generation"]
        assert new_status.json()["pool_id"] == pool_id
        # Two apps poll now, the old one through the old instance of db.py: one pool still.
        assert lifespans(port)[hello["app"]]["stopped_at"] is None
        assert database.backends.count() <= POOL_MAX_SIZE
        with EventStream(port, "/api/notes/stream?limit=1") as new:
            new_hello = new.expect("hello")
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
    assert api_status(port).json()["pool_id"] == pool_id
    assert database.backends.count() <= POOL_MAX_SIZE


def test_ctrl_c_after_edits_closes_the_pool_and_leaves_no_backends(
    asgi_server: Served, project: Path, database: Database
) -> None:
    port = asgi_server.port
    assert port is not None
    for n in range(1, 4):
        edit_max_length(project, 500 - n)
        asgi_server.wait_served("/", f'maxlength="{500 - n}"')
    assert database.backends.count() >= POOL_MIN_SIZE
    assert asgi_server.stop(signal.SIGINT, timeout=15) == 0
    wait_until(lambda: database.backends.count() == 0, timeout=15, what="every backend to go")


def test_behind_hot_reload_100_reloads_of_db_and_100_of_asgi_keep_one_pool_and_its_backends(
    serve_in_process: Callable[..., HotDemo], database: Database
) -> None:
    demo = serve_in_process()
    first = api_status(demo.port).json()
    baseline = database.backends.count()
    assert first["connections"] == baseline
    assert POOL_MIN_SIZE <= baseline <= POOL_MAX_SIZE
    with Sampler(database.dsn, database.application_name) as sampler:
        for name in ("db", "asgi"):
            for i in range(100):
                generation = demo.reload(name)
                reply = api_status(demo.port)
                assert reply.generation == generation
                assert reply.json()["pool_id"] == first["pool_id"]
                assert reply.json()["pool_created_at"] == first["pool_created_at"]
                if i % 25 == 0:
                    add_note(demo.port, f"{name} reload {i}")
    assert demo.hot.generation == 201
    assert sampler.samples, "the sampler never ran"
    assert baseline <= min(sampler.samples) and max(sampler.samples) <= POOL_MAX_SIZE
    assert demo.hot.reloader.wait_idle(60)
    stats = demo.hot.reloader.stats()
    assert (stats["clone_errors"], stats["purge_errors"], stats["leaked"]) == (0, 0, [])
    assert baseline <= database.backends.count() <= POOL_MAX_SIZE
    demo.hot.close()
    wait_until(lambda: database.backends.count() == 0, timeout=15, what="every backend to go")


def test_behind_hot_reload_without_its_hooks_every_reload_of_db_leaks_a_whole_pool(
    serve_in_process: Callable[..., HotDemo], database: Database
) -> None:
    # The counter-example: the count above is the one that would show a leak.
    demo = serve_in_process(remove_from_db=("__mp_clone__", "__mp_purge__"))
    pools = [demo.module("db").pool]
    try:
        api_status(demo.port)
        baseline = database.backends.count()
        assert baseline == POOL_MIN_SIZE
        for i in range(1, 4):
            demo.reload("db")
            pools.append(demo.module("db").pool)
            assert api_status(demo.port).json()["pool_id"] == id(pools[-1]) != id(pools[-2])
            wait_until(
                lambda i=i: database.backends.count() == baseline * (i + 1),
                what=f"{baseline * (i + 1)} backends after {i} reloads",
            )
        assert not any(pool.closed for pool in pools)
    finally:
        for pool in pools:
            pool.close()
    wait_until(lambda: database.backends.count() == 0, what="the leaked pools to close")
