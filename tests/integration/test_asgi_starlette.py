"""A Starlette app behind ``HotReload`` as plain ASGI middleware, under uvicorn and
under hypercorn (``SERVER hot_entry:hot``, where ``hot = HotReload("feed.app:app",
debug=True)``), over real sockets. A connection is pinned to the generation current
when it began, for its whole life: a stream and a WebSocket opened before an edit
keep talking to the old code while new ones get the new. One server per server
name for the module; each test edits the endpoints' ``VERSION`` to a value of its
own, so the order of the tests does not matter, except for the last one, which
stops the server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    ASGI_SERVERS,
    Served,
    app_instance,
    asgi_middleware_serving,
    call,
    copy_asgi_fixture,
    drained,
    event_stream,
    lifespan_events,
    pid_of,
    replace,
    wait_lifespans,
    wait_until,
    write,
)

from hotmod import GENERATION_HEADER

pytest.importorskip("starlette")
pytest.importorskip("hypercorn")
websockets_client = pytest.importorskip("websockets.sync.client")
websockets_exceptions = pytest.importorskip("websockets.exceptions")

TARGET = "feed.app:app"


class Project:
    """The private copy of the fixture that one server serves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.endpoints = root / "feed" / "endpoints.py"
        self.lifespan_log = root / "lifespan.log"

    def version(self) -> str:
        found = re.search(r'^VERSION = "(.*)"$', self.endpoints.read_text(), re.M)
        assert found, self.endpoints
        return found.group(1)

    def set_version(self, new: str) -> None:
        replace(self.endpoints, f'VERSION = "{self.version()}"', f'VERSION = "{new}"')

    def open_gate(self, name: str) -> None:
        (self.root / name).touch()


@pytest.fixture(scope="module", params=list(ASGI_SERVERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, Project]]:
    folder = tmp_path_factory.mktemp(f"starlette-{request.param}")
    project = Project(copy_asgi_fixture("starlette", folder))
    with asgi_middleware_serving(request.param, TARGET, project.root, folder / "entry") as server:
        yield server, project


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:6]}"


def test_an_edit_shows_in_the_same_process(served: tuple[Served, Project]) -> None:
    server, project = served
    code, before = server.get("/")
    assert code == 200 and f"home {project.version()} " in before
    new = unique("edit")
    project.set_version(new)
    after = server.wait_served("/", f"home {new} ")
    assert pid_of(after) == pid_of(before)  # the same worker process (hypercorn's is a child)
    assert app_instance(after) != app_instance(before)  # a new Starlette app: the new generation's


def test_a_stream_opened_before_an_edit_ends_on_the_old_code_while_new_requests_get_the_new(
    served: tuple[Served, Project],
) -> None:
    server, project = served
    assert server.port is not None
    old, new = project.version(), unique("sse")
    old_gate, new_gate = unique("gate"), unique("gate")
    with event_stream(server.port, f"/events?gate={old_gate}") as old_stream:
        assert next(old_stream) == f"first {old}"
        project.set_version(new)
        server.wait_served("/", f"home {new} ")
        with event_stream(server.port, f"/events?gate={new_gate}") as new_stream:
            assert next(new_stream) == f"first {new}"
            project.open_gate(new_gate)
            assert list(new_stream) == [f"second {new} open=True", f"end {new}"]
        # The old generation is still draining: the old stream holds it.
        assert server.status()["draining"]
        project.open_gate(old_gate)
        # Its generation did not retire under it: its module's resource is still open.
        assert list(old_stream) == [f"second {old} open=True", f"end {old}"]
    drained(server)  # the stream's end let its generation go


def test_a_websocket_opened_before_an_edit_keeps_the_old_code_while_a_new_one_gets_the_new(
    served: tuple[Served, Project],
) -> None:
    server, project = served
    old, new = project.version(), unique("ws")
    url = f"ws://127.0.0.1:{server.port}/ws"
    with websockets_client.connect(url, open_timeout=10) as old_socket:
        old_socket.send("a")
        assert old_socket.recv(timeout=10) == f"{old} a open=True"
        project.set_version(new)
        server.wait_served("/", f"home {new} ")
        old_socket.send("b")
        assert old_socket.recv(timeout=10) == f"{old} b open=True"  # not purged under it
        with websockets_client.connect(url, open_timeout=10) as new_socket:
            new_socket.send("c")
            assert new_socket.recv(timeout=10) == f"{new} c open=True"
            old_socket.send("d")
            assert old_socket.recv(timeout=10) == f"{old} d open=True"
        assert server.status()["draining"]  # the old socket still holds its generation
    drained(server)  # its close let its generation go


def test_each_app_runs_its_lifespan_startup_before_it_serves_and_its_shutdown_after_it_drains(
    served: tuple[Served, Project],
) -> None:
    server, project = served
    project.set_version(unique("life"))
    current = app_instance(server.wait_served("/", f"home {project.version()} "))
    apps = wait_lifespans(project.lifespan_log, current)
    assert len(apps) >= 2  # the first app and this edit's, at least


def test_a_broken_edit_shows_the_error_page_and_its_fix_serves(served: tuple[Served, Project]) -> None:
    server, project = served
    good = project.version()
    replace(project.endpoints, "async def home(request: Request)", "async def home(request: Request")
    page = server.wait_served("/", "SyntaxError", status=500)
    assert "endpoints.py" in page
    # A WebSocket gets no page: the last good generation serves it meanwhile.
    with websockets_client.connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=10) as socket:
        socket.send("x")
        assert socket.recv(timeout=10) == f"{good} x open=True"
    replace(project.endpoints, "async def home(request: Request", "async def home(request: Request)")
    server.wait_served("/", f"home {good} ")


def test_stopping_the_server_shuts_the_serving_app_down(served: tuple[Served, Project]) -> None:
    """Last: it stops the module's server, once no generation of the tests above is
    left alive (none of their streams, sockets or apps kept one)."""
    server, project = served
    current = app_instance(server.wait_served("/", "home "))
    assert server.settle()["leaked"] == []
    server.stop()  # SIGTERM: both servers run the lifespan shutdown on it
    apps = by_app(project.lifespan_log)
    assert apps[current] == ["startup", "shutdown"]
    assert all(events == ["startup", "shutdown"] for events in apps.values()), apps


def by_app(log: Path) -> dict[str, list[str]]:
    apps: dict[str, list[str]] = {}
    for event, instance in lifespan_events(log):
        apps.setdefault(instance, []).append(event)
    return apps


@pytest.mark.parametrize("server_name", list(ASGI_SERVERS))
def test_in_production_a_broken_edit_or_a_failing_startup_keeps_the_last_good_generation(
    server_name: str, tmp_path: Path
) -> None:
    project = Project(copy_asgi_fixture("starlette", tmp_path))
    with asgi_middleware_serving(
        server_name, TARGET, project.root, tmp_path / "entry", debug=False
    ) as server:
        assert server.port is not None
        reply = call(server.port, "GET", "/")
        assert reply.status == 200 and "home v1 " in reply.text
        assert GENERATION_HEADER not in reply.headers
        good = project.endpoints.read_text()
        mark = server.mark()
        replace(project.endpoints, "async def home(request: Request)", "async def home(request: Request")
        server.wait_for(r"reload failed.*endpoints\.py:\d+", after=mark)
        assert server.get("/") == (200, reply.text)  # the same app: generation 1 serves on
        assert server.get("/__hotmod__")[0] == 404  # no status page in production
        write(project.endpoints, good.replace('VERSION = "v1"', 'VERSION = "v2"'))  # the fix, and an edit
        after = server.wait_served("/", "home v2 ")
        assert pid_of(after) == pid_of(reply.text)
        first, second = app_instance(reply.text), app_instance(after)
        expected = {first: ["startup", "shutdown"], second: ["startup"]}
        wait_until(lambda: by_app(project.lifespan_log) == expected, what="the first app's shutdown")
        # A lifespan startup that raises is a failed plan too: the second app serves on.
        app_py = project.root / "feed" / "app.py"
        mark = server.mark()
        replace(app_py, '    record("startup")\n', '    raise RuntimeError("startup refused by the test")\n')
        server.wait_for(r"reload failed.*RuntimeError: startup refused by the test", after=mark)
        assert server.get("/") == (200, after)
        replace(app_py, '    raise RuntimeError("startup refused by the test")\n', '    record("startup")\n')
        project.set_version("v3")
        server.wait_served("/", "home v3 ")


@pytest.mark.slow  # make stress: the drain bound's own tests run in-process (tests/test_asgi.py)
@pytest.mark.parametrize("server_name", list(ASGI_SERVERS))
def test_the_drain_bound_ends_a_stream_and_a_websocket_cleanly_under_the_server(
    server_name: str, tmp_path: Path
) -> None:
    """``drain_timeout``: a stream that never ends and a WebSocket, both opened before
    an edit, are ended as cleanly as the server lets them be once the bound passes:
    the stream's response completes, the socket gets close code 1012."""
    project = Project(copy_asgi_fixture("starlette", tmp_path))
    with asgi_middleware_serving(
        server_name, TARGET, project.root, tmp_path / "entry", drain_timeout=1.0
    ) as server:
        assert server.port is not None
        with websockets_client.connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=10) as socket:
            socket.send("a")
            assert socket.recv(timeout=10) == "v1 a open=True"
            with event_stream(server.port, "/events?gate=never-opened") as stream:
                assert next(stream) == "first v1"
                project.set_version("v2")
                server.wait_served("/", "home v2 ")
                assert list(stream) == []  # ended, without an error, and without a gate
            with pytest.raises(websockets_exceptions.ConnectionClosedError) as closed:
                socket.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert drained(server)["generation"] == 2


def test_with_no_lifespan_from_the_server_a_failed_startup_answers_the_same_page_each_time(
    tmp_path: Path,
) -> None:
    """``uvicorn --lifespan off``: hotmod starts the app's lifespan at its first
    request; a startup that raises is answered with its page, the same each time."""
    project = Project(copy_asgi_fixture("starlette", tmp_path))
    app_py = project.root / "feed" / "app.py"
    replace(app_py, '    record("startup")\n', '    raise RuntimeError("no start")\n')
    with asgi_middleware_serving(
        "uvicorn", TARGET, project.root, tmp_path / "entry", server_args=["--lifespan", "off"]
    ) as server:
        pages = [server.get("/") for _ in range(3)]
        assert [code for code, _ in pages] == [500] * 3
        assert "RuntimeError: no start" in pages[0][1]
        frames = [page.count("File &quot;") for _, page in pages]  # the traceback's lines
        assert frames == [frames[0]] * 3
