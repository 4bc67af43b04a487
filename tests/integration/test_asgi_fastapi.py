"""A FastAPI project in the layout of its "Bigger Applications" tutorial (APIRouter
modules, a dependency, pydantic models, a lifespan) served by ``hotmod serve
shop.main:app`` with no flags: uvicorn, debug mode. Every edit builds a new
``FastAPI()`` (the plan re-executes ``shop.main``, an importer of every module),
with its own routes, dependencies and OpenAPI schema, whose lifespan starts before
it serves and shuts down after it drains. One server for the module; each test
leaves the project serving, the last one stops it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    Hammer,
    Served,
    app_instance,
    call,
    copy_asgi_fixture,
    drained,
    free_port,
    hotmod_serving,
    lifespan_events,
    pid_of,
    replace,
    wait_lifespans,
    write,
)

from hotmod import GENERATION_HEADER

pytest.importorskip("fastapi")

TARGET = "shop.main:app"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_asgi_fixture("fastapi", tmp_path_factory.mktemp("fastapi"))


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[Served]:
    with hotmod_serving(TARGET, root) as server:
        yield server


def set_hello(root: Path, new: str) -> None:
    """``/hello`` answers ``hello NEW ...`` from the next generation on."""
    pages = root / "shop" / "routers" / "pages.py"
    found = re.search(r'f"hello (\S+) app=', pages.read_text())
    assert found, pages
    replace(pages, f'f"hello {found.group(1)} app=', f'f"hello {new} app=')


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:6]}"


def test_a_router_edit_shows_in_the_same_process_on_a_new_generation(served: Served, root: Path) -> None:
    assert served.port is not None
    before = call(served.port, "GET", "/hello")
    assert before.status == 200 and before.text.startswith("hello v1 ")
    set_hello(root, "v2")
    body = served.wait_served("/hello", "hello v2 ")
    after = call(served.port, "GET", "/hello")
    assert after.text == body
    assert pid_of(body) == pid_of(before.text) == served.pid  # the process hotmod serve started
    assert app_instance(body) != app_instance(before.text)  # a new FastAPI(), the new generation's
    assert after.generation > before.generation
    assert "shop.routers.pages" in served.wait_for(r"generation \d+: reloaded")


def test_the_request_scope_names_the_generation_that_serves_it(served: Served) -> None:
    assert served.port is not None
    reply = call(served.port, "GET", "/generation")
    assert reply.status == 200
    assert reply.json() == {"generation": reply.generation} == {"generation": served.status()["generation"]}


def test_a_new_route_and_a_new_model_field_show_in_the_openapi_schema(served: Served, root: Path) -> None:
    assert served.port is not None
    schema = call(served.port, "GET", "/openapi.json").json()
    assert "/items/" not in schema["paths"]
    assert "stock" not in schema["components"]["schemas"]["Item"]["properties"]
    replace(root / "shop" / "models.py", "    price: float\n", "    price: float\n    stock: int = 0\n")
    replace(
        root / "shop" / "routers" / "items.py",
        '@router.get("/{name}", response_model=Item)',
        '@router.get("/")\ndef list_items() -> list[str]:\n    return sorted(ITEMS)\n\n\n'
        '@router.get("/{name}", response_model=Item)',
    )
    served.wait_served("/items/", '["ink","pen"]')
    served.wait_served("/items/pen", '"stock":0')
    schema = call(served.port, "GET", "/openapi.json").json()  # the new app's own schema
    assert "/items/" in schema["paths"]
    assert schema["components"]["schemas"]["Item"]["properties"]["stock"]["type"] == "integer"


def test_a_dependency_edit_shows_in_the_routes_that_depend_on_it(served: Served, root: Path) -> None:
    assert served.get("/items/ink")[1].startswith('{"name":"ink (EUR)","price":4.0')
    replace(root / "shop" / "dependencies.py", 'currency="EUR", rate=1.0', 'currency="USD", rate=2.0')
    body = served.wait_served("/items/ink", "ink (USD)")
    assert '"price":8.0' in body


def test_each_app_started_once_and_every_drained_one_shut_down(served: Served, root: Path) -> None:
    current = app_instance(served.wait_served("/hello", "hello "))
    apps = wait_lifespans(root / "lifespan.log", current)
    assert len(apps) >= 2, apps


def test_a_lifespan_startup_that_raises_leaves_the_old_generation_current_and_its_fix_serves(
    served: Served, root: Path
) -> None:
    main = root / "shop" / "main.py"
    generation = served.status()["generation"]
    serving = app_instance(served.get("/hello")[1])
    started = len(lifespan_events(root / "lifespan.log"))
    mark = served.mark()
    replace(main, '    record("startup")\n', '    raise RuntimeError("startup refused by the test")\n')
    served.wait_for(r"reload failed: .*RuntimeError: startup refused by the test", after=mark)
    page = served.wait_served("/hello", "startup refused by the test", status=500)  # debug mode
    assert "RuntimeError" in page
    assert served.status()["generation"] == generation  # the failed app never became current
    assert len(lifespan_events(root / "lifespan.log")) == started  # it recorded nothing
    replace(main, '    raise RuntimeError("startup refused by the test")\n', '    record("startup")\n')
    # The fix gives back the current generation's source: the failed edit is undone,
    # and the app that served before it serves on.
    assert app_instance(served.wait_served("/hello", "hello ")) == serving
    assert served.status()["generation"] == generation
    wait_lifespans(root / "lifespan.log", serving)


@pytest.mark.parametrize(
    ("module", "good", "bad", "error"),
    [
        ("routers/pages.py", "def hello(request: Request)", "def hello(request: Request", "SyntaxError"),
        ("dependencies.py", "\n\n@dataclass\n", "\n\nraise ValueError('broken at import')\n@dataclass\n",
         "ValueError"),
    ],
    ids=["syntax-error", "exception-at-import"],
)
def test_a_broken_edit_shows_the_error_page_naming_file_and_line_and_its_fix_serves(
    served: Served, root: Path, module: str, good: str, bad: str, error: str
) -> None:
    path = root / "shop" / module
    mark = served.mark()
    replace(path, good, bad)
    line = served.wait_for(rf"reload failed: .*{re.escape(path.name)}:\d+: {error}", after=mark)
    where = re.search(rf"\S*{re.escape(path.name)}:\d+", line)
    assert where
    page = served.wait_served("/hello", error, status=500)
    assert where.group(0) in page  # the file and the line, as the log names them
    replace(path, bad, good)
    served.wait_served("/hello", "hello ")
    assert served.get("/items/pen")[0] == 200


def test_twenty_edits_under_four_concurrent_clients_fail_no_request(served: Served, root: Path) -> None:
    clients = [Hammer(served, "/hello") for _ in range(4)]
    for client in clients:
        client.__enter__()
    try:
        for n in range(20):
            tag = unique(f"edit{n}")
            set_hello(root, tag)
            served.wait_served("/hello", f"hello {tag} ")
    finally:
        for client in clients:
            client.__exit__(None, None, None)
    assert [client.failures for client in clients] == [[]] * 4
    assert all(client.ok > 0 for client in clients)
    status = drained(served)
    assert status["stale"] == [] and status["restart_needed"] is None
    current = app_instance(served.get("/hello")[1])
    assert len(wait_lifespans(root / "lifespan.log", current)) >= 21
    assert served.out().count("hotmod: serving ") == 1  # never restarted


def test_no_retired_generation_is_kept_alive(served: Served) -> None:
    """Run after edits of the routers (the tests above): every retired generation was
    garbage collected, though FastAPI keeps facts on each endpoint function in
    lru_caches of its own (``fastapi.dependencies.models``, keyed by the function)."""
    status = served.settle()
    assert status["generation"] > 1
    assert status["leaked"] == []
    assert "leak" not in served.err()


def test_stopping_the_server_shuts_the_serving_app_down(served: Served, root: Path) -> None:
    """Last: it stops the module's server."""
    current = app_instance(served.wait_served("/hello", "hello "))
    drained(served)
    assert served.stop() == 0
    events = lifespan_events(root / "lifespan.log")
    assert events[-1] == ("shutdown", current)
    assert "hotmod: stopped" in served.out()


def test_production_serves_the_last_good_generation_through_a_broken_edit(tmp_path: Path) -> None:
    root = copy_asgi_fixture("fastapi", tmp_path)
    pages = root / "shop" / "routers" / "pages.py"
    good = pages.read_text()
    port = free_port()
    server = Served(["serve", TARGET, "--port", str(port), "--production"], root, port=port)
    try:
        server.wait_for(rf"^hotmod: serving .* on http://127\.0\.0\.1:{port}/", timeout=60)
        reply = call(port, "GET", "/hello")
        assert reply.status == 200 and GENERATION_HEADER not in reply.headers
        mark = server.mark()
        write(pages, good.replace("def hello(request: Request)", "def hello(request: Request"))
        server.wait_for(r"reload failed: .*pages\.py:\d+: SyntaxError", after=mark)
        assert server.get("/hello") == (200, reply.text)
        write(pages, good.replace("hello v1", "hello v2"))
        assert pid_of(server.wait_served("/hello", "hello v2 ")) == pid_of(reply.text)
    finally:
        server.stop()


def test_a_first_lifespan_startup_that_raises_is_served_as_its_error_page_until_fixed(tmp_path: Path) -> None:
    """Never down: the first app's startup raises, and the server still answers, with
    the error page in debug mode; the fix serves without a restart."""
    root = copy_asgi_fixture("fastapi", tmp_path)
    main = root / "shop" / "main.py"
    replace(main, '    record("startup")\n', '    raise RuntimeError("startup refused at first")\n')
    with hotmod_serving(TARGET, root) as server:
        code, page = server.get("/hello")
        assert code == 500 and "startup refused at first" in page and "main.py" in page
        replace(main, '    raise RuntimeError("startup refused at first")\n', '    record("startup")\n')
        body = server.wait_served("/hello", "hello v1 ")
        assert pid_of(body) == server.pid
        assert server.out().count("hotmod: serving ") == 1
        wait_lifespans(root / "lifespan.log", app_instance(body))
