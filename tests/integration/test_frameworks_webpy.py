"""A web.py site in the layout of web.py's skeleton, served by ``hotmod serve
app:application`` with no flags; hotmod has no support module for web.py.

web.py turns its debug mode on by itself (no ``SERVER_SOFTWARE`` in the
environment), and with it a reloader of its own that runs in every request: it
stats the file of every module in ``sys.modules`` and ``importlib.reload``\\ s the
ones whose mtime grew, into the very module object that the serving generation
holds. That is rule 4 of issue 20: the generation must stay whole despite it.
Each test leaves the site as it found it (one server for the module)."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import pytest
from support import Served, call, pid_of, replace, twenty_edits, wait_until

pytest.importorskip("web")

TARGET = "app:application"
FIXTURE = "webpy"
PACKAGE = "."  # the skeleton's modules sit at the top of the site folder


def loaded(server: Served) -> tuple[int, str, str]:
    """(the generation that answered, the ``INSTANCE`` and ``LOADED`` marks of the
    views module that it ran): a module object whose code runs again in it keeps
    its ``INSTANCE`` and gets a new ``LOADED``."""
    assert server.port is not None
    reply = call(server.port, "GET", "/loaded")
    assert reply.status == 200, reply.text
    instance, mark, _ = reply.text.split(maxsplit=2)
    return reply.generation, instance, mark


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out
    assert server.get("/")[0] == 200
    assert server.status()["frameworks"] == []  # no support module: the generic mechanisms only


def test_web_pys_own_reloader_cannot_re_execute_a_serving_generation(server: Served, pkg: Path) -> None:
    """A save that changes the mtime but not the content (an editor's ``:w``, a
    checkout): hotmod loads nothing, and web.py's reloader, which would re-execute
    ``views`` inside the serving generation on the next request, is refused and
    named once. First of the module: the warning is given once per process."""
    loaded(server)  # web.py imports views by name, now: not while a plan loads its edit
    lines = server.mark()
    replace(pkg / "views.py", "hello v1\"", "hello v2\"")  # loaded by hotmod: its content is known
    server.wait_served("/loaded", "hello v2")
    before = loaded(server)
    (pkg / "views.py").touch()

    def refused() -> str | None:
        assert loaded(server) == before  # web.py's reloader runs in requests
        return next((t for t in server.hotmod_lines(lines) if "re-executed views" in t), None)

    line = wait_until(refused, timeout=10.0, what="web.py's reload of views refused")
    assert "web/application.py" in line and "refused" in line
    for _ in range(5):  # web.py tries again on every request: refused every time, named once
        assert loaded(server) == before
    assert sum("in place" in text for text in server.hotmod_lines(lines)) == 1
    replace(pkg / "views.py", "hello v2\"", "hello v1\"")
    server.wait_served("/loaded", "hello v1")


def test_a_view_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    before = pid_of(server.get("/hello")[1])
    replace(pkg / "views.py", 'f"hello v1 pid=', 'f"hello v2 pid=')
    assert pid_of(server.wait_served("/hello", "hello v2")) == before
    replace(pkg / "views.py", 'f"hello v2 pid=', 'f"hello v1 pid=')
    server.wait_served("/hello", "hello v1")


def test_a_mapping_edit_adds_a_route_and_a_renamed_route_answers_404(server: Served, pkg: Path) -> None:
    replace(pkg / "app.py", '"/hello", "views.hello"', '"/hi", "views.hello"')
    server.wait_served("/hi", "hello v1")
    assert server.get("/hello")[0] == 404
    replace(pkg / "app.py", '"/hi", "views.hello"', '"/hello", "views.hello"')
    server.wait_served("/hello", "hello v1")
    assert server.get("/hi")[0] == 404


def test_a_settings_edit_reaches_the_template_globals(server: Served, pkg: Path) -> None:
    replace(pkg / "config.py", '"web.py site"', '"hot site"')
    server.wait_served("/", "<h1>Welcome to hot site</h1>")
    replace(pkg / "config.py", '"hot site"', '"web.py site"')
    server.wait_served("/", "<h1>Welcome to web.py site</h1>")


def test_a_syntax_error_shows_the_error_page_and_its_fix_serves_again(server: Served, pkg: Path) -> None:
    good, broken = '    def GET(self):\n        return f"hello', '    def GET(self:\n        return f"hello'
    replace(pkg / "views.py", good, broken)
    page = server.wait_served("/hello", "SyntaxError", status=500)
    assert "views.py" in page
    server.wait_for(r"reload failed: .*views\.py:\d+: SyntaxError")
    replace(pkg / "views.py", broken, good)
    server.wait_served("/hello", "hello v1")


def test_no_module_object_ever_runs_two_versions_under_load(server: Served, pkg: Path) -> None:
    """Requests keep coming while views.py is edited five times: web.py's reloader
    sees each save on the request after it, hotmod a few milliseconds later. Each
    module object of ``views`` that ever answers ran its code once: web.py never got
    to re-execute one. And none answers half built: web.py imports ``views`` by name
    on every request, which gets what ``sys.modules`` names (the next generation's
    from the moment a reload begins executing it), but the import waits on the
    module's import lock until its code has run, as during a first import
    (docs/concurrency.md). Before that lock, about one run in five met a half-run
    ``views`` and answered 500 ("has no attribute 'loaded'")."""
    seen: dict[str, set[str]] = defaultdict(set)
    half_built: list[str] = []
    stop = threading.Event()
    assert server.port is not None

    def hammer() -> None:
        while not stop.is_set():
            reply = call(server.port, "GET", "/loaded")
            if reply.status == 200:
                instance, mark, _ = reply.text.split(maxsplit=2)
                seen[instance].add(mark)
            else:
                half_built.append(reply.text)

    thread = threading.Thread(target=hammer, name="hammer")
    thread.start()
    try:
        for n in range(2, 7):
            replace(pkg / "views.py", f"hello v{n - 1}\"", f"hello v{n}\"")
            server.wait_served("/loaded", f"hello v{n}")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(seen) >= 2
    assert all(len(marks) == 1 for marks in seen.values()), dict(seen)
    assert half_built == []
    replace(pkg / "views.py", "hello v6\"", "hello v1\"")
    server.wait_served("/loaded", "hello v1")


@pytest.mark.slow  # make stress: the suite keeps its first proof of the same
def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(server: Served, pkg: Path) -> None:
    def text(n: int) -> tuple[str, str]:
        served = f"hello v1 edit {n}" if n else "hello v1"
        return f'f"{served} pid=', served

    twenty_edits(server, pkg / "views.py", "/hello", text)
    wait_until(lambda: server.status()["leaked"] == [], timeout=5.0, what="no leak")
