"""What the demo's integration tests share: a private copy of ``demo_app/`` to serve
and the demo behind HotReload on a werkzeug server (``support.serving``); the HTTP
client is ``support.call``."""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from support import Reply, call, serving

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


def status_or_none(port: int) -> dict[str, Any] | None:
    """The demo's ``/api/status``, or None while nothing answers on ``port``."""
    try:
        reply = call(port, "GET", "/api/status")
    except OSError:
        return None
    return reply.json() if reply.status == 200 else None


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


@dataclass
class Demo:
    """The demo copy in ``root`` served on ``port`` by ``hot``, and what tests ask of
    it; every GET that did not answer 200 is kept in ``failures``."""

    root: Path
    port: int
    hot: HotReload
    failures: list[str] = field(default_factory=list)

    @property
    def var(self) -> Path:
        return self.root / "var"

    def get(self, path: str) -> Reply:
        reply = call(self.port, "GET", path)
        if reply.status != 200:
            self.failures.append(f"GET {path}: {reply.status} {reply.body[:300]!r}")
        return reply

    def status(self) -> dict[str, Any]:
        reply = self.get("/api/status")
        assert reply.status == 200, reply.body
        data: dict[str, Any] = reply.json()
        return data

    def add(self, body: str) -> dict[str, Any]:
        """Add a note; the note as the demo answers it (its ``id`` among the fields)."""
        reply = call(self.port, "POST", "/api/notes", {"body": body})
        assert reply.status == 201, reply.body
        data: dict[str, Any] = reply.json()
        return data

    def module(self, name: str) -> ModuleType:
        """The current generation's instance of ``demo_app.<name>``."""
        return self.hot.reloader.current.modules[f"demo_app.{name}"]

    def reload(self, name: str) -> int:
        number: int = self.hot.reloader.reload(paths=[self.root / "demo_app" / f"{name}.py"])
        return number


@contextmanager
def demo_starter(root: Path, port: int) -> Iterator[Callable[..., Demo]]:
    """``start(remove_from_db=...)`` serves the demo copy in ``root`` on ``port`` (see
    ``serve_demo``); what it started stops on exit."""
    with ExitStack() as stack:

        def start(*, remove_from_db: tuple[str, ...] = ()) -> Demo:
            return Demo(root, port, serve_demo(stack, root, port, remove_from_db))

        yield start
