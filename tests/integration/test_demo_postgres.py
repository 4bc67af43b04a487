"""The proof that the demo's PostgreSQL pool survives reloads, against a real server.

Each test serves its own copy of ``demo_app/`` (in ``tmp_path``, so the
repository's files are never edited) through :class:`middleware.HotReload`
under werkzeug's threaded server on a free port, and talks to it over HTTP.
Every run gives its pool a unique ``application_name`` and its own schema, so
the backends counted in ``pg_stat_activity`` are this test's and nobody
else's. Reloads are driven through the engine with explicit paths
(``reloader.reload(paths=[...])``), which reloads a file even when its content
did not change: fast, and no watcher thread races the test.

The counter-examples load the same module with its hooks taken out, and show
what the hooks prevent: without ``__mp_clone__`` and ``__mp_purge__`` every
reload leaks a pool; with ``__mp_purge__`` alone every reload churns one.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import psycopg_pool  # noqa: F401  (see the note below the imports)
import pytest
import werkzeug.routing  # noqa: F401  (see the note below the imports)
from psycopg.conninfo import make_conninfo
from support import (
    DEMO_TARGET,
    Backends,
    DemoServer,
    Sampler,
    Served,
    call,
    demo_copy,
    demo_starter,
    status_or_none,
    wait_until,
)
from werkzeug.test import EnvironBuilder, run_wsgi_app

from hotmod.middleware import HotReload

pytestmark = pytest.mark.postgres

# psycopg_pool and werkzeug.routing are imported above although no test names
# them: the ``project`` fixture's ``clean_modules`` drops every module first
# imported during a test, and would re-import the demo's dependencies (and
# hotmod) for each test.
# Mirrors demo_app.db; the tests read the loaded module's values and check these.
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 4


# -- the database side ------------------------------------------------------------------


@dataclass
class Database:
    url: str
    dsn: str
    application_name: str
    options: str  # libpq options that put the demo's table in this test's schema
    backends: Backends


@pytest.fixture
def database(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """``DATABASE_URL`` for this test only: a unique application_name and schema."""
    tag = uuid.uuid4().hex[:12]
    application_name = f"hotmod-test-{tag}"
    schema = f"hotmod_test_{tag}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
    options = f"-c search_path={schema}"
    url = make_conninfo(pg_dsn, application_name=application_name, options=options)
    monkeypatch.setenv("DATABASE_URL", url)
    backends = Backends(pg_dsn, application_name)
    try:
        yield Database(url, pg_dsn, application_name, options, backends)
    finally:
        # A failing test may leave a pool behind; never let it outlive the test.
        backends.terminate()
        backends.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


# -- the demo's copy, the middleware and the server ---------------------------------------


@pytest.fixture
def demo_root(project: Path) -> Iterator[Path]:
    """A copy of ``demo_app/`` in a watched tmp root, importable as ``demo_app``."""
    with demo_copy(project):
        yield project


@pytest.fixture
def serve(demo_root: Path, database: Database, port: int) -> Iterator[Callable[..., DemoServer]]:
    """Start the demo copy (optionally without some db.py hooks) behind HotReload and a server."""
    with demo_starter(demo_root, port) as start:
        yield start


@contextmanager
def streaming(app: Callable[..., Any], path: str) -> Iterator[Iterator[bytes]]:
    """Begin a request in-process and yield its body, unread; the request ends on exit."""
    app_iter, status, _headers = run_wsgi_app(app, EnvironBuilder(path=path).get_environ())
    try:
        assert status.startswith("200"), status
        yield iter(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()


# -- the proof ------------------------------------------------------------------------------


def test_the_pool_survives_200_reloads_of_db_and_200_of_views_with_constant_backends(
    serve: Callable[..., DemoServer], database: Database
) -> None:
    demo = serve()
    db = demo.module("db")
    assert (db.POOL_MIN_SIZE, db.POOL_MAX_SIZE) == (POOL_MIN_SIZE, POOL_MAX_SIZE)
    del db  # holding an instance would keep its generation alive, a leak the engine reports
    first = demo.status()
    baseline = database.backends.count()
    assert first["connections"] == baseline
    assert POOL_MIN_SIZE <= baseline <= POOL_MAX_SIZE
    assert first["application_name"] == database.application_name
    pool_id, pool_created_at = first["pool_id"], first["pool_created_at"]
    added = []
    expected_generation = demo.hot.generation

    with Sampler(database.dsn, database.application_name) as sampler:
        for name in ("db", "views"):
            for i in range(200):
                before = demo.module(name)
                expected_generation += 1
                assert demo.reload(name) == expected_generation
                assert demo.module(name) is not before, f"{name} was not loaded afresh"
                del before
                if i % 10 == 0:
                    page = demo.get("/")
                    assert page.generation == expected_generation
                    assert f'<span id="pool-id">{pool_id}</span>' in page.body.decode()
                reply = demo.get("/api/status")
                assert reply.generation == expected_generation
                status = reply.json()
                assert status["pool_id"] == pool_id
                assert status["pool_created_at"] == pool_created_at
                assert status["connections"] == baseline
                assert database.backends.count() == baseline
                if i % 25 == 0:
                    added.append(demo.add(f"{name} reload {i}")["id"])

    assert demo.failures == []
    assert sampler.samples, "the sampler never ran"
    assert max(sampler.samples) <= POOL_MAX_SIZE
    assert expected_generation == 401
    assert demo.hot.generation == 401
    # Carrying the pool keeps no superseded instance of db.py alive.
    assert demo.hot.reloader.wait_idle(60)
    stats = demo.hot.reloader.stats()
    assert stats["clone_errors"] == 0
    assert stats["purge_errors"] == 0
    assert stats["draining"] == []
    assert stats["leaked"] == []
    listed = [note["id"] for note in demo.get("/api/notes").json()["notes"]]
    assert sorted(listed) == sorted(added)
    assert database.backends.count() == baseline


def test_without_its_hooks_every_reload_of_db_leaks_a_whole_pool(
    serve: Callable[..., DemoServer], database: Database
) -> None:
    demo = serve(remove_from_db=("__mp_clone__", "__mp_purge__"))
    pools = [demo.module("db").pool]
    try:
        demo.status()
        baseline = database.backends.count()
        assert baseline == POOL_MIN_SIZE
        for i in range(1, 6):
            demo.reload("db")
            pools.append(demo.module("db").pool)
            # Every pool is held in ``pools``, so no id() can be reused.
            assert demo.status()["pool_id"] == id(pools[-1]) != id(pools[-2])
            # Every superseded pool stays open: its connections are never given back.
            wait_until(
                lambda i=i: database.backends.count() == baseline * (i + 1),
                what=f"{baseline * (i + 1)} backends after {i} reloads",
            )
        assert not any(pool.closed for pool in pools)
        assert demo.failures == []
    finally:
        for pool in pools:
            pool.close()
    wait_until(lambda: database.backends.count() == 0, what="the leaked pools to close")


def test_with_purge_but_no_clone_the_old_pool_closes_once_its_generation_drains(
    serve: Callable[..., DemoServer], database: Database
) -> None:
    demo = serve(remove_from_db=("__mp_clone__",))
    for i in range(5):
        demo.add(f"note {i}")
    baseline = database.backends.count()
    old_pool = demo.module("db").pool

    with streaming(demo.hot, "/api/notes.ndjson") as rows:
        first_row = json.loads(next(rows))  # the export now holds one of the pool's connections
        demo.reload("db")
        new_status = demo.status()
        assert new_status["pool_id"] != id(old_pool)
        assert not old_pool.closed, "the old pool was closed under a request still using it"
        assert database.backends.count() == 2 * baseline
        rest = [json.loads(line) for line in rows]
    assert [row["body"] for row in [first_row, *rest]] == [f"note {i}" for i in range(5)]
    wait_until(lambda: old_pool.closed, what="the drained generation's pool to be purged")
    wait_until(lambda: database.backends.count() == baseline, what="the old backends to go")

    # Churn, not a leak: every reload opens a new pool, and the old one closes.
    for _ in range(20):
        # Holding the old pool keeps its id() from being reused by the new one.
        old_pool = demo.module("db").pool
        demo.reload("db")
        assert demo.status()["pool_id"] != id(old_pool), "the pool identity did not change"
        wait_until(lambda p=old_pool: p.closed, what="the drained generation's purge")
        wait_until(lambda: database.backends.count() == baseline, what="the old backends to go")
    assert demo.failures == []


def test_a_failed_clone_opens_a_fresh_pool_and_closes_the_old_after_its_last_request(
    serve: Callable[..., DemoServer], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = serve()
    for i in range(5):
        demo.add(f"note {i}")
    baseline = database.backends.count()
    old_db = demo.module("db")
    old_pool = old_db.pool

    def clone_that_fails(module: ModuleType) -> None:
        raise RuntimeError("clone failed on purpose")

    monkeypatch.setattr(old_db, "__mp_clone__", clone_that_fails)
    with streaming(demo.hot, "/api/notes.ndjson") as rows:
        first_row = json.loads(next(rows))  # the export now holds one of the pool's connections
        generation = demo.reload("db")

        assert demo.hot.reloader.stats()["clone_errors"] == 1
        reply = demo.get("/api/status")
        assert reply.generation == generation
        status = reply.json()
        assert status["pool_id"] != id(old_pool), "a failed clone must not hand the pool over"
        assert not old_pool.closed, "the old pool was closed under a request still using it"
        assert database.backends.count() == 2 * baseline
        rest = [json.loads(line) for line in rows]
    # The export, which held an old connection across the reload, completed in full.
    assert [row["body"] for row in [first_row, *rest]] == [f"note {i}" for i in range(5)]
    wait_until(lambda: old_pool.closed, what="the old pool to be purged once drained")
    wait_until(lambda: database.backends.count() == baseline, what="the old backends to go")
    assert demo.get("/").status == 200
    assert demo.status()["pool_id"] == status["pool_id"]
    assert demo.failures == []


def test_close_leaves_no_backends_after_reloads(serve: Callable[..., DemoServer], database: Database) -> None:
    demo = serve()
    demo.add("before the reloads")
    for name in ("db", "views", "db"):
        demo.reload(name)
        assert demo.get("/").status == 200
    assert database.backends.count() >= POOL_MIN_SIZE
    pool = demo.module("db").pool
    demo.hot.close()
    assert pool.closed
    wait_until(lambda: database.backends.count() == 0, what="every backend to go")


def test_the_pool_connects_as_hotmod_demo_when_the_dsn_names_no_application(
    demo_root: Path, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", make_conninfo(database.dsn, options=database.options))
    hot = HotReload(DEMO_TARGET, watch=[demo_root], scan_interval=3600.0)
    try:
        db = hot.reloader.current.modules["demo_app.db"]
        assert db.application_name == "hotmod-demo"
        with db.pool.connection() as conn:
            row = conn.execute("show application_name").fetchone()
        assert row == ("hotmod-demo",)
    finally:
        hot.close()


def test_ctrl_c_on_hotmod_serve_leaves_no_backends_and_an_edit_keeps_the_pool(
    demo_root: Path, database: Database, port: int, served: Callable[..., Served]
) -> None:
    script = str(Path(sys.executable).parent / "hotmod")
    args = ["serve", DEMO_TARGET, "--port", str(port)]
    process = served(args, demo_root, command=[script], env={"DATABASE_URL": database.url}).process
    first = wait_until(lambda: status_or_none(port), timeout=30, what="hotmod serve to answer")
    assert first["pid"] == process.pid
    baseline = database.backends.count()
    assert baseline == first["connections"] >= POOL_MIN_SIZE

    views_py = demo_root / "demo_app" / "views.py"
    views_py.write_text(
        views_py.read_text().replace('HEADING = "hotmod notes"', 'HEADING = "edited notes"')
    )
    page = wait_until(
        lambda: (r := call(port, "GET", "/")).status == 200 and b"edited notes" in r.body and r,
        timeout=30,
        what="the edit to be served",
    )
    assert page.generation > 1
    after = call(port, "GET", "/api/status").json()
    assert after["pid"] == process.pid
    assert after["pool_id"] == first["pool_id"]
    assert database.backends.count() == baseline

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    wait_until(lambda: database.backends.count() == 0, what="every backend to go")


@pytest.mark.slow
def test_four_clients_see_no_failure_and_one_pool_through_1000_reloads(
    serve: Callable[..., DemoServer], database: Database
) -> None:
    demo = serve()
    first = demo.status()
    baseline = database.backends.count()
    stop = threading.Event()
    errors: list[str] = []
    seen_pools: set[int] = set()

    def client() -> None:
        while not stop.is_set():
            try:
                reply = call(demo.port, "GET", "/api/status")
            except OSError as exc:
                errors.append(repr(exc))
                continue
            if reply.status != 200:
                errors.append(f"{reply.status} {reply.body[:200]!r}")
            else:
                seen_pools.add(reply.json()["pool_id"])

    clients = [threading.Thread(target=client, name=f"client-{i}") for i in range(4)]
    with Sampler(database.dsn, database.application_name) as sampler:
        for thread in clients:
            thread.start()
        try:
            for i in range(1000):
                demo.reload("db" if i % 2 else "views")
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)
    assert errors == []
    assert seen_pools == {first["pool_id"]}
    assert max(sampler.samples) <= POOL_MAX_SIZE
    # Concurrent clients may have grown the pool up to its max; it never went past it.
    assert baseline <= database.backends.count() <= POOL_MAX_SIZE
