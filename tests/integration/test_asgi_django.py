"""Django under ASGI: the scaffolding's ``mysite/asgi.py``
(``application = get_asgi_application()``) served by ``hotmod serve
mysite.asgi:application`` with no flags (uvicorn, debug mode), in the layout
Django's own scaffolding makes (``django-admin startproject mysite``,
``manage.py startapp polls``), with the Django support as under WSGI: a view edit
reloads in-process, a model edit restarts with the socket kept. One server for
the module; the edits run in sequence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    ASGI_FIXTURES,
    ASGI_SERVERS,
    Hammer,
    Served,
    asgi_middleware_serving,
    django_project,
    hotmod_serving,
    pid_of,
    replace,
)

pytest.importorskip("django")

FIXTURE = ASGI_FIXTURES / "django_polls"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return django_project(tmp_path_factory.mktemp("django-asgi"), "polls", FIXTURE)


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with hotmod_serving("mysite.asgi:application", project) as server:
        yield server


def test_the_async_and_the_sync_views_serve_with_the_django_support(served: Served) -> None:
    code, body = served.get("/polls/hello/")
    assert code == 200 and body.startswith("hello v1 ")
    assert served.get("/polls/")[0] == 200
    assert served.status()["frameworks"] == ["django"]


def test_a_view_edit_shows_on_the_next_request_in_the_same_process(served: Served, project: Path) -> None:
    before = pid_of(served.get("/polls/hello/")[1])
    replace(project / "polls" / "views.py", "hello v1", "hello v2")
    body = served.wait_served("/polls/hello/", "hello v2")
    assert pid_of(body) == before == served.pid
    assert "polls.views" in served.wait_for(r"generation \d+: reloaded")


def test_a_routing_edit_adds_the_new_route_and_the_renamed_one_answers_404(
    served: Served, project: Path
) -> None:
    replace(project / "polls" / "urls.py", 'path("hello/"', 'path("hi/"')
    served.wait_served("/polls/hi/", "hello v2")
    assert served.get("/polls/hello/")[0] == 404


def test_a_syntax_error_shows_the_error_page_and_its_fix_serves_again(
    served: Served, project: Path
) -> None:
    views = project / "polls" / "views.py"
    replace(views, "async def hello(request):", "async def hello(request:")
    served.wait_for(r"reload failed: .*views\.py:\d+: SyntaxError")
    code, body = served.get("/polls/hi/")
    assert code == 500 and "SyntaxError" in body
    replace(views, "async def hello(request:", "async def hello(request):")
    served.wait_served("/polls/hi/", "hello v2")


def test_a_model_edit_restarts_with_the_socket_kept_and_no_request_fails(
    served: Served, project: Path
) -> None:
    mark = served.mark()
    with Hammer(served, "/polls/hi/") as hammer:
        field = "max_length=200)"
        replace(
            project / "polls" / "models.py", field, f"{field}\n    votes = models.IntegerField(default=0)"
        )
        served.wait_for(r"restart needed: .*models\.py", after=mark)
        served.wait_for(r"^hotmod: serving ", after=mark, timeout=60)
        served.wait_served("/polls/", "3 fields")  # the new model, in a new process image
        ok_before = hammer.ok
        served.wait_served("/polls/hi/", "hello")
    assert hammer.failures == []
    assert hammer.ok > ok_before > 0
    # The next view edit still shows, in-process again.
    replace(project / "polls" / "views.py", "hello v2", "hello v3")
    served.wait_served("/polls/hi/", "hello v3")
    assert served.get("/polls/registry/") == (200, "auth.Group,auth.User,polls.Question")


@pytest.fixture(scope="module")
def middleware_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second project, for the servers that run HotReload as middleware in turn."""
    return django_project(tmp_path_factory.mktemp("django-asgi-middleware"), "polls", FIXTURE)


@pytest.mark.parametrize("server_name", list(ASGI_SERVERS))
def test_as_middleware_a_view_edit_shows_in_the_same_process(
    server_name: str, middleware_project: Path
) -> None:
    """``SERVER hot_entry:hot`` with ``hot = HotReload("mysite.asgi:application")``:
    Django's handler raises on a lifespan scope before it asks for anything: it has
    no lifespan, and serves without one (not a failed startup)."""
    project, views = middleware_project, middleware_project / "polls" / "views.py"
    entry = project.parent / "entry"
    with asgi_middleware_serving(server_name, "mysite.asgi:application", project, entry) as server:
        code, before = server.get("/polls/hello/")
        assert code == 200 and before.startswith("hello v1 ")
        assert server.get("/polls/")[0] == 200
        replace(views, "hello v1", f"hello {server_name}")
        assert pid_of(server.wait_served("/polls/hello/", f"hello {server_name}")) == pid_of(before)
        assert server.status()["frameworks"] == ["django"]
    replace(views, f"hello {server_name}", "hello v1")  # for the next server
