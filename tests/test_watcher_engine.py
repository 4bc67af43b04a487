"""Edits driven end to end: real files, the real watcher (inotify and polling), the
engine's ``Reloader.watch()``, generations counted.

"Exactly once" is checked without sleeping: after the edit under test has made its
generation, a second, unrelated edit must make the very next one, with only its own
module in it.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import child_report, wait_until

from hotmod.reloader import Reloader, ReloadEvent

BACKENDS = ["inotify", "watchdog", "polling"]


class Engine:
    """A loaded, watching Reloader with the events it published."""

    def __init__(self, reloader: Reloader, project: Path) -> None:
        self.r = reloader
        self.project = project
        self.events: list[ReloadEvent] = []
        self._lock = threading.Lock()
        reloader.subscribe(self._record)

    def _record(self, event: ReloadEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: str) -> list[ReloadEvent]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    @property
    def number(self) -> int:
        return self.r.current.number

    def module(self, name: str) -> object:
        return self.r.current.modules[name]

    def wait_number(self, number: int, timeout: float = 15.0) -> None:
        """Wait until generation ``number`` is current and its event was published."""
        wait_until(
            lambda: (
                self.number >= number and any(ev.generation >= number for ev in self.of("reloaded"))
            ),
            timeout=timeout,
            what=f"generation {number}",
        )
        assert self.number == number

    def then_only(self, rel: str, text: str, module: str) -> None:
        """Make one more, unrelated edit and check that it alone makes the next generation."""
        before = self.number
        write(self.project, rel, text)
        self.wait_number(before + 1)
        last = self.of("reloaded")[-1]
        assert last.generation == before + 1
        assert module in last.modules


def write(project: Path, rel: str, text: str) -> Path:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(project: Path) -> Path:
    write(project, "app/__init__.py", "")
    write(project, "app/db.py", "VALUE = 1\nCOMPLETE = True\n")
    write(project, "app/other.py", "OTHER = 1\n")
    write(
        project,
        "app/wsgi.py",
        """\
        from app import db, other

        def app(environ, start_response):
            return db.VALUE
        """,
    )
    return project / "app"


@pytest.fixture
def engine(project: Path, app: Path, backend: str) -> Iterator[Callable[..., Engine]]:
    made: list[Reloader] = []

    def make(**watch_options: object) -> Engine:
        r = Reloader("app.wsgi:app", roots=[project], leak_check_delay=0.0)
        made.append(r)
        r.load()
        e = Engine(r, project)
        watch_options.setdefault("backend", backend)
        watch_options.setdefault("poll_interval", 0.05)
        r.watch(**watch_options)
        assert r.watcher.backend == backend
        return e

    yield make
    for r in made:
        r.close()


def test_one_save_reloads_once(engine: Callable[..., Engine], app: Path) -> None:
    e = engine()
    write(app.parent, "app/db.py", "VALUE = 2\nCOMPLETE = True\n")

    e.wait_number(2)
    assert e.r.current.target({}, None) == 2
    assert e.of("reloaded")[-1].modules[0] == "app.db"
    e.then_only("app/other.py", "OTHER = 2\n", "app.other")
    assert [ev.generation for ev in e.of("reloaded")] == [2, 3]


def test_an_atomic_save_by_rename_reloads_once(engine: Callable[..., Engine], app: Path) -> None:
    e = engine()
    temporary = app / ".db.py.tmp~"
    temporary.write_text("VALUE = 3\nCOMPLETE = True\n")
    os.replace(temporary, app / "db.py")

    e.wait_number(2)
    assert e.r.current.target({}, None) == 3
    e.then_only("app/other.py", "OTHER = 2\n", "app.other")
    assert [ev.generation for ev in e.of("reloaded")] == [2, 3]


def test_truncate_then_slow_write_never_makes_a_half_module_current(
    engine: Callable[..., Engine], app: Path, backend: str
) -> None:
    """The in-place save pauses after the truncate and after half of the text. With
    inotify, no generation ever holds the empty or the half module; with polling
    (best effort, see docs/watcher.md) the complete module still wins in the end."""
    e = engine(max_wait=2.0)
    seen: list[tuple[object, object]] = []
    e.r.subscribe(
        lambda ev: (
            seen.append(
                (
                    getattr(e.module("app.db"), "VALUE", None),
                    getattr(e.module("app.db"), "COMPLETE", None),
                )
            )
            if ev.kind == "reloaded"
            else None
        )
    )
    final = "VALUE = 4\n" + "# filler\n" * 20 + "COMPLETE = True\n"
    with open(app / "db.py", "w") as stream:
        stream.flush()
        threading.Event().wait(0.3)  # longer than the quiet window
        stream.write(final[:30])
        stream.flush()
        threading.Event().wait(0.3)
        stream.write(final[30:])

    wait_until(lambda: seen and seen[-1] == (4, True), timeout=15)
    if backend == "inotify":
        assert seen == [(4, True)]
        assert e.r.stats()["failures"] == 0
    else:
        assert seen[-1] == (4, True)


def test_five_hundred_files_in_one_burst_make_one_reload(
    engine: Callable[..., Engine], app: Path
) -> None:
    names = [f"gen_{i}" for i in range(500)]
    for name in names:
        write(app.parent, f"app/many/{name}.py", "N = 0\n")
    write(app.parent, "app/many/__init__.py", "".join(f"from . import {n}\n" for n in names))
    write(app.parent, "app/other.py", "from app import many\nOTHER = 1\n")
    e = engine(quiet=1.0, max_wait=20.0)
    before = e.number
    wait_until(lambda: "app.many.gen_499" in e.r.current.modules)

    for name in names:
        write(app.parent, f"app/many/{name}.py", "N = 1\n")
    wait_until(lambda: e.module("app.many.gen_499").N == 1, timeout=30)  # type: ignore[attr-defined]

    assert e.number == before + 1
    assert all(e.module(f"app.many.{n}").N == 1 for n in names)  # type: ignore[attr-defined]
    assert e.r.watcher.stats()["batches"] == 1


def test_identical_rewrite_and_bare_touch_make_no_generation(
    engine: Callable[..., Engine], app: Path
) -> None:
    e = engine()
    db = app / "db.py"

    db.write_text(db.read_text())  # same bytes, new mtime
    seen = wait_until(lambda: e.r.watcher.stats()["batches"])
    with open(db, "a"):  # what `touch` does: open for writing, set the times, close
        os.utime(db)
    wait_until(lambda: e.r.watcher.stats()["batches"] > seen)

    assert e.number == 1
    e.then_only("app/other.py", "OTHER = 2\n", "app.other")
    assert [ev.generation for ev in e.of("reloaded")] == [2]


def test_a_new_module_later_imported_by_an_edited_module_is_picked_up(
    engine: Callable[..., Engine], app: Path
) -> None:
    e = engine()
    write(app.parent, "app/fresh.py", "FRESH = 'new'\n")
    write(
        app.parent,
        "app/wsgi.py",
        """\
        from app import db, fresh

        def app(environ, start_response):
            return fresh.FRESH
        """,
    )

    wait_until(lambda: e.r.current.target({}, None) == "new")
    write(app.parent, "app/fresh.py", "FRESH = 'edited'\n")
    wait_until(lambda: e.r.current.target({}, None) == "edited")
    assert "app.fresh" in e.r.graph()["app.wsgi"]


def test_a_deleted_module_leaves_the_generation_and_is_purged(
    engine: Callable[..., Engine], app: Path
) -> None:
    write(app.parent, "purges.py", "log = []\n")
    write(
        app.parent,
        "app/other.py",
        """\
        import purges
        OTHER = 1

        def __mp_purge__():
            purges.log.append("other purged")
        """,
    )
    e = engine()
    assert "app.other" in e.r.current.modules
    write(
        app.parent,
        "app/wsgi.py",
        "from app import db\n\ndef app(environ, start_response):\n    return db.VALUE\n",
    )
    wait_until(lambda: "app.other" not in e.r.graph().get("app.wsgi", []))
    number = e.number

    (app / "other.py").unlink()
    e.wait_number(number + 1)
    assert "app.other" not in e.r.current.modules
    assert e.r.wait_idle(10)
    assert sys.modules["purges"].log == ["other purged"]  # type: ignore[attr-defined]


def test_a_broken_edit_is_reported_like_a_manual_reload_and_the_fix_wins(
    engine: Callable[..., Engine], app: Path
) -> None:
    e = engine()
    write(app.parent, "app/db.py", "VALUE = (\n")

    wait_until(lambda: e.of("failed"))
    failure = e.of("failed")[0].failure
    assert failure is not None and failure.file == str(app / "db.py") and failure.line
    assert e.r.last_error is failure
    assert e.number == 1 and e.r.current.target({}, None) == 1

    write(app.parent, "app/db.py", "VALUE = 5\nCOMPLETE = True\n")
    e.wait_number(2)
    assert e.r.current.target({}, None) == 5 and e.r.last_error is None


@pytest.mark.parametrize("backend", ["inotify", "polling"])  # watchdog's cannot close what it inherited
def test_a_forked_child_watches_and_reloads_on_its_own(
    engine: Callable[..., Engine], app: Path, backend: str
) -> None:
    def inotify_fds() -> set[str]:
        return {
            n
            for n in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{n}")
            and os.readlink(f"/proc/self/fd/{n}") == "anon_inode:inotify"
        }

    others = inotify_fds()  # left open by some earlier code of this process: not ours
    e = engine()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read_end)
            fds = inotify_fds() - others
            report = [f"inherited-inotify={len(fds)}", f"handled={e.r.check_fork()}"]
            write(app.parent, "app/db.py", "VALUE = 'child'\nCOMPLETE = True\n")
            deadline = time.monotonic() + 15
            while e.r.current.target({}, None) != "child" and time.monotonic() < deadline:
                time.sleep(0.01)
            report.append(f"value={e.r.current.target({}, None)}")
            os.write(write_end, " ".join(report).encode())
            status = 0
        finally:
            os._exit(status)
    report = child_report(pid, read_end, write_end)
    assert report == ["inherited-inotify=0", "handled=True", "value=child"]
    # The parent's own watcher saw the same edit.
    wait_until(lambda: e.r.current.target({}, None) == "child")


def test_a_busy_app_importing_hundreds_of_modules_and_reading_files_reloads_every_edit(
    engine: Callable[..., Engine], app: Path
) -> None:
    names = [f"mod_{i}" for i in range(300)]
    for name in names:
        write(app.parent, f"app/many/{name}.py", "import json, email.parser\nN = 0\n")
        write(app.parent, f"app/templates/{name}.html", "<p>{{ n }}</p>\n" * 10)
    write(app.parent, "app/many/__init__.py", "".join(f"from . import {n}\n" for n in names))
    write(app.parent, "app/other.py", "from app import many\nOTHER = 1\n")
    e = engine()
    stop = threading.Event()
    reads = [0]

    def serve_requests() -> None:  # every "request" reads templates and sources
        while not stop.is_set():
            for path in (app / "templates").iterdir():
                path.read_bytes()
            for path in (app / "many").glob("*.py"):
                path.read_bytes()
            reads[0] += 1

    server = threading.Thread(target=serve_requests)
    server.start()
    try:
        for edit in range(1, 6):
            number = e.number
            write(app.parent, f"app/many/mod_{edit * 50}.py", f"N = {edit}\n")
            e.wait_number(number + 1)
            assert e.module(f"app.many.mod_{edit * 50}").N == edit  # type: ignore[attr-defined]
    finally:
        stop.set()
        server.join(10)
    assert not server.is_alive()
    assert reads[0] > 0
