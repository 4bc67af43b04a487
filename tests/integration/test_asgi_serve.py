"""``hotmod serve`` of an ASGI target: uvicorn, over real sockets, in a process of its
own. An edit shows in the same process while a stream and a WebSocket opened before
it finish on the old code; a restart-only edit restarts with the socket kept; the
lifespan of each app runs, its shutdown at Ctrl-C too; without uvicorn, one line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import websockets
from support import Served, counting_refusals, free_port, wait_until

APP = '''
import asyncio, json, os

from live import config

VERSION = {version!r}
EVENTS = os.path.join(os.path.dirname(__file__), "events.log")


def note(line):
    with open(EVENTS, "a") as f:
        f.write(line + "\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                note("start " + VERSION)
                await send({{"type": "lifespan.startup.complete"}})
            else:
                note("stop " + VERSION)
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
    if scope["path"] == "/events":
        await send({{"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]}})
        for i in range(8):
            await send({{"type": "http.response.body", "body": f"data: {{VERSION}} {{i}}\\n\\n".encode(),
                        "more_body": True}})
            await asyncio.sleep(0.1)
        await send({{"type": "http.response.body", "body": b""}})
        return
    body = json.dumps({{"version": VERSION, "pid": os.getpid(), "config": config.NAME}}).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body}})
'''

CONFIG = '''
__hotmod_restart__ = "settings are read once at start-up"
NAME = {name!r}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "__init__.py").write_text("")
    (tmp_path / "live" / "main.py").write_text(APP.format(version="v1"))
    (tmp_path / "live" / "config.py").write_text(CONFIG.format(name="first"))
    return tmp_path


def start(project: Path, *flags: str) -> Served:
    port = free_port()
    server = Served(["serve", "live.main:app", "--port", str(port), *flags], project, port=port)
    server.wait_for(rf"^hotmod: serving live\.main:app on http://127\.0\.0\.1:{port}/", timeout=60)
    return server


def served_json(port: int) -> dict[str, object]:
    reply = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert reply.status_code == 200, reply.text[:500]
    return dict(reply.json())


def events(project: Path) -> list[str]:
    path = project / "live" / "events.log"
    return path.read_text().split() if path.exists() else []


async def _edit_while_open(project: Path, port: int) -> dict[str, object]:
    """Open an SSE stream and a WebSocket, edit, and see what each sees."""
    seen: dict[str, object] = {}
    async with httpx.AsyncClient(timeout=30) as client, websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("a")
        seen["ws_before"] = await ws.recv()
        async with client.stream("GET", f"http://127.0.0.1:{port}/events") as stream:
            lines = stream.aiter_lines()
            chunks = [await anext(lines)]
            (project / "live" / "main.py").write_text(APP.format(version="v2"))
            deadline = time.monotonic() + 20
            while (await client.get(f"http://127.0.0.1:{port}/")).json()["version"] != "v2":
                assert time.monotonic() < deadline, "the edit never showed"
                await asyncio.sleep(0.005)
            seen["stream_open_at_edit"] = not stream.is_closed
            await ws.send("b")
            seen["ws_after"] = await ws.recv()
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as newer:
                await newer.send("c")
                seen["ws_new"] = await newer.recv()
            chunks += [line async for line in lines]
        seen["stream"] = [c for c in chunks if c]
    return seen


def test_an_edit_shows_in_the_same_process_while_a_stream_and_a_websocket_finish_on_the_old_code(
    project: Path,
) -> None:
    server = start(project)
    try:
        assert "ASGI on uvicorn" in server.output()
        first = served_json(server.port or 0)
        assert first["version"] == "v1"
        seen = asyncio.run(asyncio.wait_for(_edit_while_open(project, server.port or 0), 60))
        assert seen["ws_before"] == "v1:a"
        assert seen["stream_open_at_edit"] is True
        assert seen["ws_after"] == "v1:b"  # the open socket stays on generation 1
        assert seen["ws_new"] == "v2:c"
        assert seen["stream"] == [f"data: v1 {i}" for i in range(8)]  # all of it, old code
        assert served_json(server.port or 0)["pid"] == first["pid"]
        # Generation 1's app stopped once its connections ended; 2's started first.
        wait_until(lambda: events(project) == ["start", "v1", "start", "v2", "stop", "v1"],
                   timeout=20, what="generation 1's lifespan shutdown")
        assert server.stop(signal.SIGINT) == 0
        assert events(project)[-2:] == ["stop", "v2"]  # uvicorn's lifespan shutdown reached the app
    finally:
        server.kill()


def test_a_restart_only_edit_restarts_with_the_socket_kept(project: Path) -> None:
    server = start(project)
    try:
        port = server.port or 0
        before = served_json(port)
        with counting_refusals(port) as refused:
            (project / "live" / "config.py").write_text(CONFIG.format(name="second"))
            wait_until(lambda: served_json(port)["config"] == "second", timeout=60,
                       what="the restarted process serving the new settings")
        assert refused == []
        after = served_json(port)
        assert after["pid"] == before["pid"]  # exec: same process, new interpreter
        assert "hotmod: restarting:" in server.output()
    finally:
        server.kill()


def test_without_uvicorn_an_asgi_target_is_one_line_naming_the_extra(project: Path) -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["uvicorn"] = None  # as if the extra were not installed
        from hotmod.middleware.cli import main
        sys.exit(main(["serve", "live.main:app", "--port", sys.argv[1]]))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code, str(free_port())], cwd=project, capture_output=True, text=True,
        timeout=60, env={**os.environ, "HOTMOD_PROBE": "0"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "hotmod: error: live.main:app is an ASGI application; serving it needs uvicorn:"
        " pip install 'hotmod[asgi]'"
    ]


def test_an_asgi_target_that_fails_at_start_is_served_once_fixed(project: Path) -> None:
    (project / "live" / "main.py").write_text("VERSION = (\n")
    port = free_port()
    server = Served(["serve", "live.main:app", "--port", str(port)], project, port=port)
    try:
        server.wait_for(rf"^hotmod: serving live\.main:app on http://127\.0\.0\.1:{port}/", timeout=60)
        assert "it did not load" in server.output()
        reply = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert reply.status_code == 500 and "SyntaxError" in reply.text  # the error page, over WSGI
        with counting_refusals(port) as refused:
            (project / "live" / "main.py").write_text(APP.format(version="v1"))
            # Nothing could tell it was ASGI before it loaded: a restart serves it on uvicorn.
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200,
                       timeout=60, what="the fixed app, served")
        assert refused == []
        assert served_json(port)["version"] == "v1"
        server.wait_for(r"ASGI on uvicorn", timeout=30)
    finally:
        server.kill()
