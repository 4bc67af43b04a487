"""The demo on its embedded default, SQLite: reloads never open another file handle.

Each test serves its own copy of ``demo_app/`` (in ``tmp_path``, so the
database is ``<tmp>/proj/var/demo.sqlite3`` and the repository is never
edited) through :class:`middleware.HotReload` under werkzeug's threaded
server, and counts the file descriptors this process (or the ``hotmod serve``
subprocess) holds open, from ``/proc/<pid>/fd``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import psycopg_pool  # noqa: F401  (see the note below the imports)
import pytest
import werkzeug.routing  # noqa: F401  (see the note below the imports)
from support import (
    DEMO_TARGET,
    DemoServer,
    Served,
    call,
    demo_copy,
    demo_starter,
    open_descriptors,
    status_or_none,
    wait_until,
)

# psycopg_pool and werkzeug.routing are imported above although no test names
# them: the ``project`` fixture's ``clean_modules`` drops every module first
# imported during a test, and would re-import the demo's dependencies (and
# hotmod) for each test.

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counting file handles needs /proc"
)


def handles_under(folder: Path, pid: int | str = "self") -> list[str]:
    """The files under ``folder`` that process ``pid`` holds open, one entry per descriptor."""
    prefix = str(folder.resolve()) + os.sep
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed between the listing and the readlink
            continue
        if target.startswith(prefix):
            found.append(target)
    return sorted(found)


def handle_targets(pid: int | str = "self") -> list[str]:
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return sorted(targets)


def wait_for_no_new_handles(count: int, before: list[str], pid: int | str = "self") -> None:
    """Wait until ``pid`` holds at most ``count`` descriptors; on a timeout, say which are new.

    At most, not exactly: the count taken as the baseline may still include the
    socket of a request that the server was closing on its own thread. A leak
    grows the count with every reload, and never comes back under it.
    """
    try:
        wait_until(lambda: open_descriptors(pid) <= count, what=f"at most {count} open file handles")
    except AssertionError as exc:
        now = handle_targets(pid)
        added = sorted(set(now) - set(before))
        raise AssertionError(f"{exc}: now {len(now)}; new since the first request: {added}") from None


@pytest.fixture
def demo_root(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of ``demo_app/`` in a watched tmp root, importable as ``demo_app``, on SQLite."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project):
        yield project


@pytest.fixture
def serve(demo_root: Path, port: int) -> Iterator[Callable[..., DemoServer]]:
    with demo_starter(demo_root, port) as start:
        yield start


def is_closed(db: ModuleType | SimpleNamespace) -> bool:
    """Whether ``db``'s connection is closed, asked under the lock its purge closes it under.

    Using a sqlite3 connection on one thread while another closes it can crash
    the interpreter; ``__mp_purge__`` closes it holding ``db.lock``, so this does too.
    """
    with db.lock:
        try:
            db.pool.execute("select 1")
        except sqlite3.ProgrammingError:
            return True
    return False


def carried_state(db: ModuleType) -> SimpleNamespace:
    """The connection and lock of a db instance, without holding the instance itself."""
    return SimpleNamespace(pool=db.pool, lock=db.lock)


def test_file_handles_stay_constant_across_100_reloads_of_db_and_100_of_views(
    serve: Callable[..., DemoServer],
) -> None:
    demo = serve()
    first = demo.status()
    assert first["backend"] == "sqlite"
    database_file = str((demo.var / "demo.sqlite3").resolve())
    assert handles_under(demo.var) == [database_file]
    total, targets = open_descriptors(), handle_targets()
    added = []
    for name in ("db", "views"):
        for i in range(100):
            before = demo.module(name)
            demo.reload(name)
            assert demo.module(name) is not before, f"{name} was not loaded afresh"
            del before
            if i % 10 == 0:
                assert demo.get("/").status == 200
            status = demo.status()
            assert status["pool_id"] == first["pool_id"]
            assert status["pool_created_at"] == first["pool_created_at"]
            if i % 25 == 0:
                added.append(demo.add(f"{name} reload {i}")["id"])
            assert handles_under(demo.var) == [database_file]
            # The server closes each request's socket on its own thread: let it finish.
            wait_for_no_new_handles(total, targets)
    assert demo.failures == []
    assert demo.hot.generation == 201
    listed = [note["id"] for note in demo.get("/api/notes").json()["notes"]]
    assert sorted(listed) == sorted(added)


def test_without_clone_every_reload_opens_a_new_connection_and_purge_closes_the_old(
    serve: Callable[..., DemoServer],
) -> None:
    demo = serve(remove_from_db=("__mp_clone__",))
    demo.add("kept in the file")
    database_file = str((demo.var / "demo.sqlite3").resolve())
    for _ in range(20):
        # Holding the old connection keeps its id() from being reused by the new one.
        old = carried_state(demo.module("db"))
        assert demo.status()["pool_id"] == id(old.pool)
        demo.reload("db")
        assert demo.status()["pool_id"] != id(old.pool), "the connection identity did not change"
        wait_until(lambda old=old: is_closed(old), what="the drained generation's purge")
        assert handles_under(demo.var) == [database_file]
    assert [n["body"] for n in demo.get("/api/notes").json()["notes"]] == ["kept in the file"]
    assert demo.failures == []


def test_close_releases_the_database_file(serve: Callable[..., DemoServer]) -> None:
    demo = serve()
    demo.add("note")
    demo.reload("db")
    demo.reload("views")
    assert demo.get("/").status == 200
    assert handles_under(demo.var) != []
    db = carried_state(demo.module("db"))
    demo.hot.close()
    assert is_closed(db)
    assert handles_under(demo.var) == []


def test_the_footer_shows_the_generation_that_served_the_request(
    serve: Callable[..., DemoServer],
) -> None:
    demo = serve()
    demo.reload("views")
    page = demo.get("/")
    assert page.headers["X-Hotmod-Generation"] == "2"
    assert '<dd id="generation">2</dd>' in page.body.decode()
    assert demo.status()["generation"] == 2


@pytest.mark.slow
def test_hotmod_serve_keeps_its_handle_count_through_50_real_edits_of_a_view(
    demo_root: Path, port: int, served: Callable[..., Served]
) -> None:
    # No DATABASE_URL reaches it (demo_root took it out of the environment): SQLite.
    script = str(Path(sys.executable).parent / "hotmod")
    process = served(["serve", DEMO_TARGET, "--port", str(port)], demo_root, command=[script]).process
    views_py = demo_root / "demo_app" / "views.py"
    original = views_py.read_text()
    first = wait_until(lambda: status_or_none(port), timeout=30, what="hotmod serve")
    baseline, targets = open_descriptors(process.pid), handle_targets(process.pid)
    var = demo_root / "var"
    database_handles = handles_under(var, process.pid)
    assert database_handles == [str((var / "demo.sqlite3").resolve())]
    for i in range(50):
        heading = f"edit number {i}"
        views_py.write_text(original.replace('HEADING = "hotmod notes"', f'HEADING = "{heading}"'))
        wait_until(lambda h=heading: heading_served(port, h), timeout=30, what=f"edit {i} served")
        status = call(port, "GET", "/api/status").json()
        assert status["pool_id"] == first["pool_id"]
        assert status["pid"] == process.pid
        assert handles_under(var, process.pid) == database_handles
        wait_for_no_new_handles(baseline, targets, process.pid)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0


def heading_served(port: int, heading: str) -> bool:
    reply = call(port, "GET", "/")
    return reply.status == 200 and f"<h1>{heading}</h1>".encode() in reply.body
