"""``HotReload`` serving an ASGI target, in-process (middleware/_asgi.py): connections
pinned to the generation they began on, a lifespan per app run on the server's loop,
async purge hooks awaited there, the drain bound, and the debug pages.

The "server" here is the test's own event loop driving the ASGI protocol, as uvicorn
or hypercorn would; reloads run on a thread of their own (``asyncio.to_thread``), as
the watcher's would. Real servers: tests/integration/test_asgi_serve.py and the
framework proofs in tests/integration/test_asgi_*.py."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Write

from hotmod import HotReload, ReloadError
from hotmod.middleware._asgi import DRAIN_CLOSE_CODE

APP = """
    import asyncio, json, threading
    from asgiapp import store

    VERSION = {version!r}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    {startup}
                    store.EVENTS.append(("start", VERSION, threading.get_ident()))
                    scope["state"]["started_by"] = VERSION
                    await send({{"type": "lifespan.startup.complete"}})
                else:
                    store.EVENTS.append(("stop", VERSION, threading.get_ident()))
                    await send({{"type": "lifespan.shutdown.complete"}})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({{"type": "websocket.accept"}})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send({{"type": "websocket.send", "text": VERSION + ":" + message["text"]}})
        body = json.dumps({{"version": VERSION, "state": scope.get("state", {{}}).get("started_by"),
                           "generation": scope.get("hotmod.generation")}}).encode()
        if scope["path"] == "/stream":
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            first = b"first " + VERSION.encode()
            await send({{"type": "http.response.body", "body": first, "more_body": True}})
            await store.GATE.wait()
            await send({{"type": "http.response.body", "body": b" last " + VERSION.encode()}})
            return
        if scope["path"] == "/boom":
            raise LookupError("the view broke")
        await send({{"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]}})
        await send({{"type": "http.response.body", "body": body}})
"""

STORE = """
    import asyncio, threading
    EVENTS = []
    PURGED = []
    GATE = None  # an asyncio.Event, set by the test on its loop

    async def __mp_purge__():
        PURGED.append((threading.get_ident(), id(asyncio.get_running_loop())))
"""


def app_source(version: str, startup: str = "pass") -> str:
    return APP.format(version=version, startup=startup)


@pytest.fixture
def project_app(write: Write, project: Path) -> Path:
    write("asgiapp/__init__.py", "")
    write("asgiapp/store.py", STORE)
    write("asgiapp/main.py", app_source("v1"))
    return project / "asgiapp"


class Client:
    """The test's side of an ASGI server: requests, lifespan and WebSockets driven on
    this loop, against ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_task: asyncio.Task[None] | None = None

    async def startup(self) -> dict[str, Any]:
        self._lifespan_task = asyncio.create_task(self.app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            self._lifespan.get, self._lifespan_sent.put,
        ))
        await self._lifespan.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self._lifespan_sent.get(), 30)

    async def shutdown(self) -> dict[str, Any]:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(self._lifespan_sent.get(), 30)
        assert self._lifespan_task is not None
        await asyncio.wait_for(self._lifespan_task, 30)
        return answer

    @staticmethod
    def scope(path: str, host: str = "127.0.0.1:8000", kind: str = "http") -> dict[str, Any]:
        return {
            "type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", host.encode())], "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000), "state": {},
        }

    async def get(self, path: str = "/", host: str = "127.0.0.1:8000") -> tuple[int, dict[str, str], bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(self.app(self.scope(path, host), receive, send), 30)
        start = sent[0]
        headers = {k.decode(): v.decode() for k, v in start.get("headers", ())}
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return start["status"], headers, body

    async def json(self, path: str = "/") -> dict[str, Any]:
        status, _, body = await self.get(path)
        assert status == 200, body[:500]
        return json.loads(body)  # type: ignore[no-any-return]

    def stream(self, path: str = "/stream") -> Stream:
        return Stream(self, path)

    def websocket(self) -> Socket:
        return Socket(self)


class Stream:
    """A request whose response is streamed: its messages as they come."""

    def __init__(self, client: Client, path: str) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._disconnect = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await self._disconnect.wait()
            return {"type": "http.disconnect"}

        self.task = asyncio.create_task(client.app(client.scope(path), receive, self.messages.put))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), 30)

    async def rest(self) -> list[dict[str, Any]]:
        await asyncio.wait_for(self.task, 30)
        found = []
        while not self.messages.empty():
            found.append(self.messages.get_nowait())
        return found


class Socket:
    """A WebSocket connection: what the client sends, what the app sent."""

    def __init__(self, client: Client) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(client.app(client.scope("/ws", kind="websocket"),
                                                   self.incoming.get, self.sent.put))

    async def accepted(self) -> None:
        assert (await asyncio.wait_for(self.sent.get(), 30))["type"] == "websocket.accept"

    async def say(self, text: str) -> dict[str, Any]:
        await self.incoming.put({"type": "websocket.receive", "text": text})
        return await asyncio.wait_for(self.sent.get(), 30)

    async def close(self) -> None:
        await self.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 30)


Make = Callable[..., Any]


@pytest.fixture
def hot(project_app: Path, apps: list[HotReload]) -> Make:
    def make(**options: Any) -> Any:
        options.setdefault("debug", True)
        options.setdefault("probe", False)
        app = HotReload("asgiapp.main:app", **options)
        apps.append(app)
        return app

    return make


async def edit(app: Any, path: Path, text: str) -> int:
    """Write ``text`` and reload on a thread, as the watcher would (never on the loop)."""
    path.write_text(inspect.cleandoc(text) + "\n")
    return await asyncio.to_thread(app.reload)  # type: ignore[no-any-return]


def store(app: Any) -> Any:
    return app.reloader.current.modules["asgiapp.store"]


@pytest.fixture
def run() -> Callable[[Any], Any]:
    def run(coroutine: Any) -> Any:
        return asyncio.run(asyncio.wait_for(coroutine, 60))

    return run


def test_an_asgi_target_is_served_as_an_asgi_application(hot: Make, run: Callable[[Any], Any]) -> None:
    app = hot()
    assert isinstance(app, HotReload)
    assert app.interface == "asgi"
    # What uvicorn and hypercorn look at to tell ASGI from WSGI.
    assert inspect.iscoroutinefunction(app.__call__)

    async def main() -> None:
        client = Client(app)
        assert (await client.startup())["type"] == "lifespan.startup.complete"
        status, headers, body = await client.get()
        assert status == 200
        assert headers["x-hotmod-generation"] == "1"
        assert json.loads(body) == {"version": "v1", "state": "v1", "generation": 1}
        await client.shutdown()

    run(main())


def test_a_wsgi_target_stays_wsgi(write: Write, apps: list[HotReload]) -> None:
    write("wsgiapp/__init__.py", "")
    write("wsgiapp/main.py", """
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"wsgi"]
    """)
    app = HotReload("wsgiapp.main:app", probe=False)
    apps.append(app)
    assert app.interface == "wsgi"
    assert not inspect.iscoroutinefunction(app.__call__)


def test_a_stream_and_a_websocket_finish_on_their_generation_while_new_ones_get_the_edit(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        store(app).GATE = asyncio.Event()
        client = Client(app)
        await client.startup()
        stream = client.stream()
        assert (await stream.next())["status"] == 200
        assert (await stream.next())["body"] == b"first v1"
        socket = client.websocket()
        await socket.accepted()
        assert (await socket.say("a"))["text"] == "v1:a"

        assert await edit(app, project_app / "main.py", app_source("v2")) == 2
        assert (await client.json())["version"] == "v2"  # at once, while both are open
        assert (await socket.say("b"))["text"] == "v1:b"  # the socket stays on generation 1
        newer = client.websocket()
        await newer.accepted()
        assert (await newer.say("c"))["text"] == "v2:c"
        await newer.close()
        # Generation 1 drains only when its last connection ends.
        assert [d["generation"] for d in app.reloader.stats()["draining"]] == [1]
        store(app).GATE.set()
        assert [m["body"] for m in await stream.rest()] == [b" last v1"]
        await socket.close()
        await asyncio.to_thread(app.reloader.wait_idle)
        assert app.reloader.stats()["draining"] == []
        await client.shutdown()

    run(main())


def test_each_generation_runs_its_own_lifespan_on_the_servers_loop(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        loop_thread = threading.get_ident()
        client = Client(app)
        await client.startup()
        events = store(app).EVENTS
        assert events == [("start", "v1", loop_thread)]
        assert await edit(app, project_app / "main.py", app_source("v2")) == 2
        # The new app started before it served (on the loop, not the reloading
        # thread); the old one stopped once drained, before its purge hooks.
        assert (await client.json())["state"] == "v2"
        await asyncio.to_thread(app.reloader.wait_idle)
        assert events == [("start", "v1", loop_thread), ("start", "v2", loop_thread),
                          ("stop", "v1", loop_thread)]
        assert (await client.shutdown())["type"] == "lifespan.shutdown.complete"
        assert events[-1] == ("stop", "v2", loop_thread)

    run(main())


def test_a_lifespan_startup_that_raises_is_a_failed_plan_and_its_fix_serves(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        client = Client(app)
        await client.startup()
        broken = app_source("v2", startup='raise ConnectionError("no database at startup")')
        with pytest.raises(ReloadError) as failed:
            await edit(app, project_app / "main.py", broken)
        failure = failed.value.failure
        assert failure.type == "ConnectionError"
        assert failure.file == str(project_app / "main.py")
        assert "no database at startup" in failure.message
        assert app.generation == 1
        status, _, body = await client.get()  # debug mode: the error page
        assert status == 500 and b"no database at startup" in body and b"main.py" in body
        # A failed plan takes no number.
        assert await edit(app, project_app / "main.py", app_source("v3")) == 2
        assert (await client.json())["version"] == "v3"
        await client.shutdown()

    run(main())


def test_in_production_a_failed_edit_leaves_the_last_good_generation_serving(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot(debug=False)

    async def main() -> None:
        client = Client(app)
        await client.startup()
        with pytest.raises(ReloadError):
            await edit(app, project_app / "main.py", "VERSION = (")
        status, headers, body = await client.get()
        assert status == 200 and json.loads(body)["version"] == "v1"
        assert "x-hotmod-generation" not in headers
        await client.shutdown()

    run(main())


def test_debug_pages_answer_allowed_hosts_only(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        client = Client(app)
        await client.startup()
        status, headers, body = await client.get("/__hotmod__")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body)["generation"] == 1
        status, _, body = await client.get("/boom")  # raised before the response began
        assert status == 500 and b"LookupError" in body and b"the view broke" in body
        with pytest.raises(ReloadError):
            await edit(app, project_app / "main.py", "VERSION = (")
        status, _, body = await client.get("/", host="shop.example")
        assert status == 400 and b"--allow-host shop.example" in body
        status, _, body = await client.get("/")
        assert status == 500 and b"SyntaxError" in body
        await client.shutdown()

    run(main())


def test_an_async_purge_hook_is_awaited_on_the_servers_loop(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        client = Client(app)
        await client.startup()
        purged = store(app).PURGED
        (project_app / "store.py").write_text(inspect.cleandoc(STORE) + "\nNEW = 1\n")
        assert await asyncio.to_thread(app.reload) == 2
        await asyncio.to_thread(app.reloader.wait_idle)
        loop = asyncio.get_running_loop()
        assert purged == [(threading.get_ident(), id(loop))]
        assert app.reloader.stats()["purge_errors"] == 0
        await client.shutdown()  # close(): the current store is purged, on the loop too
        assert store_purges(app) >= 2

    run(main())


def store_purges(app: Any) -> int:
    return int(app.reloader.stats()["purges"])


def test_an_async_clone_hook_is_refused_by_name(
    hot: Make, project_app: Path, run: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    clone = "\n\nasync def __mp_clone__(new):\n    pass\n"
    (project_app / "store.py").write_text(inspect.cleandoc(STORE) + clone)
    app = hot()

    async def main() -> None:
        client = Client(app)
        await client.startup()
        (project_app / "store.py").write_text(inspect.cleandoc(STORE) + "\nNEW = 1\n")
        assert await asyncio.to_thread(app.reload) == 2
        await client.shutdown()

    run(main())
    assert "__mp_clone__ of asgiapp.store is a coroutine function" in caplog.text
    assert "make it a plain def" in caplog.text


def test_the_drain_bound_ends_an_open_stream_and_closes_a_websocket_with_1012(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot(drain_timeout=0.5)

    async def main() -> None:
        store(app).GATE = asyncio.Event()  # never set: only the bound ends the stream
        client = Client(app)
        await client.startup()
        stream = client.stream()
        await stream.next()
        await stream.next()
        socket = client.websocket()
        await socket.accepted()
        assert await edit(app, project_app / "main.py", app_source("v2")) == 2
        # The stream gets its last, empty chunk: a clean end of the chunked body.
        assert await stream.rest() == [{"type": "http.response.body", "body": b"", "more_body": False}]
        closed = await asyncio.wait_for(socket.sent.get(), 30)
        assert closed["type"] == "websocket.close" and closed["code"] == DRAIN_CLOSE_CODE
        await asyncio.wait_for(socket.task, 30)
        await asyncio.to_thread(app.reloader.wait_idle)
        assert app.reloader.stats()["draining"] == []
        assert (await client.json())["version"] == "v2"
        await client.shutdown()

    run(main())


def test_without_server_lifespan_events_the_first_request_starts_the_lifespan(
    hot: Make, project_app: Path, run: Callable[[Any], Any]
) -> None:
    app = hot()

    async def main() -> None:
        client = Client(app)
        answers = await asyncio.gather(*(client.json() for _ in range(5)))
        assert {a["state"] for a in answers} == {"v1"}
        assert [e[:2] for e in store(app).EVENTS] == [("start", "v1")]  # once, not per request

    run(main())


def test_forcing_the_wrong_interface_is_a_clear_error(project_app: Path) -> None:
    with pytest.raises(ValueError, match=r"interface='wsgi', but asgiapp\.main:app is an ASGI application"):
        HotReload("asgiapp.main:app", interface="wsgi", probe=False)


def test_an_app_without_lifespan_support_serves_without_one(
    write: Write, apps: list[HotReload], run: Callable[[Any], Any]
) -> None:
    write("nolife/__init__.py", "")
    write("nolife/main.py", """
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                return  # an app that ignores the protocol, as ASGI allows
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"served"})
    """)
    app = HotReload("nolife.main:app", probe=False)
    apps.append(app)

    async def main() -> None:
        client = Client(app)
        assert (await client.startup())["type"] == "lifespan.startup.complete"
        assert (await client.get())[::2] == (200, b"served")
        assert (await client.shutdown())["type"] == "lifespan.shutdown.complete"

    run(main())
