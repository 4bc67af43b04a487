"""The app's own cost of one edit of ``app/routers/pages.py``, in one process, with no
reloader, watcher or socket: ``python cost.py ROUNDS`` prints JSON (medians in ms).

What any reloader that re-executes the edited module and its importers pays before
the new text can be served: executing ``app.routers.pages``, ``app.routers.live``
and ``app.main`` afresh (a new ``FastAPI`` object with its routes), the new app's
lifespan startup, and its first request (Starlette builds the middleware stack then),
next to a steady request of the same app. Requests are plain ASGI calls.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import time
from typing import Any

PLAN = ("app.routers.pages", "app.routers.live", "app.main")


def execute_afresh(name: str) -> None:
    """A new module object for ``name``, its code run in it, in place of the old one."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


async def get(app: Any, path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def measure(rounds: int) -> dict[str, Any]:
    import app.main

    async with app.main.app.router.lifespan_context(app.main.app):
        await get(app.main.app, "/")  # the first app's own first request, not counted
    times: dict[str, list[float]] = {"exec": [], "startup": [], "first_request": [], "steady_request": []}
    for _ in range(rounds):
        started = time.perf_counter()
        for name in PLAN:
            execute_afresh(name)
        times["exec"].append(time.perf_counter() - started)
        new_app = sys.modules["app.main"].app
        started = time.perf_counter()
        async with new_app.router.lifespan_context(new_app):
            times["startup"].append(time.perf_counter() - started)
            for key in ("first_request", "steady_request"):
                started = time.perf_counter()
                status, _ = await get(new_app, "/")
                times[key].append(time.perf_counter() - started)
                assert status == 200, status
    return {f"{k}_ms": round(statistics.median(v) * 1000, 2) for k, v in times.items()} | {"rounds": rounds}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1])))))
