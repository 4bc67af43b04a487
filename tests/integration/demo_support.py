"""What the demo's integration tests share: a private copy of ``demo_app/`` to serve,
a werkzeug server on a free port, and a small HTTP client."""

from __future__ import annotations

import ast
import http.client
import json
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any

from werkzeug.serving import make_server

from hotmod.middleware import HotReload

REPO = Path(__file__).resolve().parents[2]
DEMO_SOURCE = REPO / "demo_app"
TARGET = "demo_app.wsgi:app"


def without_functions(source: str, *names: str) -> str:
    """``source`` with the module-level functions ``names`` taken out."""
    tree = ast.parse(source)
    kept = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name in names)]
    assert len(tree.body) - len(kept) == len(names), f"not all of {names} are defined"
    tree.body = kept
    return ast.unparse(tree)


def demo_modules() -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in sys.modules.items()
        if name == "demo_app" or name.startswith("demo_app.")
    }


@contextmanager
def demo_copy(project: Path) -> Iterator[Path]:
    """A copy of ``demo_app/`` in the watched root ``project``, importable as
    ``demo_app`` while it lasts (the repository's own is never edited)."""
    shutil.copytree(DEMO_SOURCE, project / "demo_app", ignore=shutil.ignore_patterns("__pycache__"))
    saved = demo_modules()
    for name in saved:
        del sys.modules[name]
    try:
        yield project
    finally:
        for name in demo_modules():
            del sys.modules[name]
        sys.modules.update(saved)


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def generation(self) -> int:
        return int(self.headers["X-Hotmod-Generation"])


def call(port: int, method: str, path: str, payload: Any = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = None if payload is None else json.dumps(payload)
        headers = {} if payload is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def status_or_none(port: int) -> dict[str, Any] | None:
    """The demo's ``/api/status``, or None while nothing answers on ``port``."""
    try:
        reply = call(port, "GET", "/api/status")
    except OSError:
        return None
    return reply.json() if reply.status == 200 else None


@contextmanager
def serving(app: Callable[..., Any], port: int) -> Iterator[None]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-server")
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


def serve_demo(
    stack: ExitStack, root: Path, port: int, remove_from_db: tuple[str, ...] = ()
) -> HotReload:
    """Serve the demo copy in ``root`` behind HotReload (debug mode) on ``port``, with
    the module-level functions ``remove_from_db`` taken out of its db.py first.
    No watcher thread (the scan interval is far away): the test drives every reload.
    Both are stopped when ``stack`` closes."""
    db_py = root / "demo_app" / "db.py"
    if remove_from_db:
        db_py.write_text(without_functions(db_py.read_text(), *remove_from_db))
    hot = HotReload(TARGET, watch=[root], debug=True, scan_interval=3600.0)
    stack.callback(hot.close)
    stack.enter_context(serving(hot, port))
    return hot
