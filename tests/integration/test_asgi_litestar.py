"""A Litestar app in the layout of its docs (a ``Controller``, dataclass models, the
app with ``on_startup``/``on_shutdown`` hooks) served by ``hotmod serve
library.app:app`` with no flags: uvicorn, debug mode. Each edit builds a new
``Litestar()`` with its own routes and OpenAPI schema; its startup hooks run
before it serves, its shutdown hooks after it drains. One server for the module;
the last test stops it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    Served,
    app_instance,
    call,
    copy_asgi_fixture,
    drained,
    hotmod_serving,
    lifespan_events,
    pid_of,
    replace,
    wait_lifespans,
)

pytest.importorskip("litestar")

TARGET = "library.app:app"
SCHEMA = "/schema/openapi.json"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_asgi_fixture("litestar", tmp_path_factory.mktemp("litestar"))


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[Served]:
    with hotmod_serving(TARGET, root) as server:
        yield server


def test_a_handler_edit_shows_in_the_same_process(served: Served, root: Path) -> None:
    code, before = served.get("/hello")
    assert code == 200 and before.startswith("hello v1 ")
    replace(root / "library" / "controllers.py", "hello v1", "hello v2")
    after = served.wait_served("/hello", "hello v2 ")
    assert pid_of(after) == pid_of(before) == served.pid
    assert app_instance(after) != app_instance(before)


def test_a_new_controller_route_and_model_field_show_in_the_openapi_schema(
    served: Served, root: Path
) -> None:
    assert served.port is not None
    schema = call(served.port, "GET", SCHEMA).json()
    assert "/books/count" not in schema["paths"]
    replace(root / "library" / "models.py", "    author: str\n", "    author: str\n    year: int = 0\n")
    replace(
        root / "library" / "controllers.py",
        '    @get("/{index:int}")',
        '    @get("/count")\n    async def count(self) -> int:\n        return len(BOOKS)\n\n'
        '    @get("/{index:int}")',
    )
    served.wait_served("/books/count", "2")
    served.wait_served("/books/0", '"year":0')
    schema = call(served.port, "GET", SCHEMA).json()
    assert "/books/count" in schema["paths"]
    assert "year" in schema["components"]["schemas"]["Book"]["properties"]


def test_a_syntax_error_shows_the_error_page_and_its_fix_serves(served: Served, root: Path) -> None:
    controllers = root / "library" / "controllers.py"
    mark = served.mark()
    replace(controllers, "async def list_books(self)", "async def list_books(self")
    served.wait_for(r"reload failed: .*controllers\.py:\d+: SyntaxError", after=mark)
    page = served.wait_served("/hello", "SyntaxError", status=500)
    assert "controllers.py" in page
    replace(controllers, "async def list_books(self", "async def list_books(self)")
    served.wait_served("/books/", "Dune")


def test_each_app_ran_its_startup_hooks_once_and_every_drained_one_its_shutdown_hooks(
    served: Served, root: Path
) -> None:
    current = app_instance(served.wait_served("/hello", "hello "))
    status = served.settle()
    assert len(wait_lifespans(root / "lifespan.log", current)) >= 3
    assert status["leaked"] == []  # no retired app kept alive by Litestar


def test_stopping_the_server_runs_the_serving_apps_shutdown_hooks(served: Served, root: Path) -> None:
    """Last: it stops the module's server."""
    current = app_instance(served.wait_served("/hello", "hello "))
    drained(served)
    assert served.stop() == 0
    assert lifespan_events(root / "lifespan.log")[-1] == ("shutdown", current)
