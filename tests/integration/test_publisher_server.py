"""Publisher behind a real server: mounted at ``/legacy`` beside a Flask app served
by HotReload at ``/``, and in the demo, with real HTTP requests and real file edits.

Raw request lines go through http.client, which sends the path exactly as given, so
``%2F`` and ``..`` reach the server as a client would send them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from support import call, demo_copy, replace, serve_demo, serving, wait_until
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from hotmod import HotReload, Publisher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "publisher"


@pytest.fixture
def site(project: Path, tmp_path: Path, port: int) -> Iterator[Path]:
    """Flask at / (HotReload) and the fixture handlers at /legacy (Publisher), served on
    ``port``; yields the folder that holds both ``pubfront/`` and ``handlers/``."""
    shutil.copytree(FIXTURES / "pubfront", project / "pubfront")
    handlers = project / "handlers"
    shutil.copytree(FIXTURES / "handlers", handlers)
    with ExitStack() as stack:
        front = HotReload("pubfront.app:app", watch=[project / "pubfront"])
        stack.callback(front.close)
        legacy = Publisher(handlers)
        stack.callback(legacy.close)
        stack.enter_context(serving(DispatcherMiddleware(front, {"/legacy": legacy}), port))
        yield project


def test_flask_at_the_root_and_a_handler_folder_at_legacy_share_one_server(site: Path, port: int) -> None:
    assert call(port, "GET", "/").text == "front v1"
    assert call(port, "GET", "/legacy/notes/where").json() == {
        "published": "notes.where",
        "script_root": "/legacy",
        "path": "/notes/where",
    }
    assert call(port, "GET", "/legacy").text == "published index.index"
    assert call(port, "GET", "/legacy/").text == "published index.index"
    assert call(port, "GET", "/legacy/notes/show?id=5").json()["id"] == "5"
    assert call(port, "GET", "/notes/list").status == 404  # Flask's 404: not under /legacy


def test_head_and_options_over_the_wire(site: Path, port: int) -> None:
    get, head = call(port, "GET", "/legacy/notes/list"), call(port, "HEAD", "/legacy/notes/list")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.body))
    options = call(port, "OPTIONS", "/legacy/notes/add")
    assert (options.status, options.headers["Allow"]) == (200, "OPTIONS, POST")
    assert call(port, "DELETE", "/legacy/notes/list").status == 405


TRAVERSAL_ATTEMPTS = [
    "/legacy/notes%2Flist",
    "/legacy/notes%2flist",
    "/legacy/..%2Flegacy/notes/list",
    "/legacy/../legacy/notes/list",
    "/legacy/notes/../notes/list",
    "/legacy/notes/list/__globals__",
    "/legacy/notes/__dict__",
    "/legacy/notes/os/system",
    "/legacy/config.ini",
    "/legacy//etc/passwd",
]


def test_traversal_attempts_over_the_wire_are_404(site: Path, port: int) -> None:
    for path in TRAVERSAL_ATTEMPTS:
        reply = call(port, "GET", path)
        assert (reply.status, reply.text) == (404, "Not Found\n"), path


def test_edits_reload_the_flask_app_and_the_handler_folder_independently(site: Path, port: int) -> None:
    replace(site / "pubfront" / "app.py", '"front v1"', '"front v2"')
    wait_until(lambda: call(port, "GET", "/").text == "front v2", what="Flask's edit")
    assert call(port, "GET", "/legacy/notes/list").text == "published notes.list"
    replace(site / "handlers" / "notes.py", '"published notes.list"', '"published notes.list v2"')
    wait_until(lambda: call(port, "GET", "/legacy/notes/list").text == "published notes.list v2", what="v2")
    (site / "handlers" / "added.py").write_text("def index():\n    return 'added'\n")
    wait_until(lambda: call(port, "GET", "/legacy/added").text == "added", what="the new module")
    assert call(port, "GET", "/").text == "front v2"


# -- the demo's /legacy -----------------------------------------------------------------------


def test_demo_serves_its_handler_folder_at_legacy_and_reloads_it(
    project: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project), ExitStack() as stack:
        hot = serve_demo(stack, project, port)
        assert call(port, "GET", "/api/status").status == 200  # the demo itself
        page = call(port, "GET", "/legacy/hello?name=Grisha")
        assert page.status == 200 and "Hello, Grisha!" in page.text
        assert 'href="/legacy/"' in page.text  # the handler built its link from script_root
        status = call(port, "GET", "/legacy/api/status").json()
        assert status["handler"] == "api.status"
        assert call(port, "POST", "/legacy/api/status").status == 405
        assert call(port, "GET", "/legacy/hello/_greeting").status == 404
        assert call(port, "GET", "/legacy/_layout/page").status == 404

        replace(project / "demo_app" / "handlers" / "hello.py", '"Hello"', '"Bonjour"')
        wait_until(
            lambda: "Bonjour, Grisha!" in call(port, "GET", "/legacy/hello?name=Grisha").text,
            what="the edited greeting",
        )
        # A reload of the module that mounts it hands the same Publisher over.
        wsgi = hot.reloader.current.modules["demo_app.wsgi"]
        publisher = wsgi.legacy["publisher"]
        hot.reloader.reload([project / "demo_app" / "wsgi.py"])
        assert hot.reloader.current.modules["demo_app.wsgi"].legacy["publisher"] is publisher
        assert "Bonjour" in call(port, "GET", "/legacy/hello").text
        del wsgi
    # Closing the demo ran wsgi.__mp_purge__, which closed the Publisher.
    assert repr(publisher).endswith("closed>")
    assert publisher.package not in sys.modules


def test_demo_import_starts_no_publisher_until_legacy_is_asked_for(
    project: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project), ExitStack() as stack:
        hot = serve_demo(stack, project, port)
        assert call(port, "GET", "/").status == 200
        assert hot.reloader.current.modules["demo_app.wsgi"].legacy == {}


