"""Bottle behind ``hotmod serve`` with no flags, over real HTTP, in both of its
styles: a shared ``Bottle()`` decorated from another module (``shop``) and the
default application of ``@bottle.route`` (``blog``). One server per style; the
edits run in sequence against it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Hammer, Served, hotmod_serving, pid_of, replace

pytest.importorskip("bottle")

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "bottle_apps"


@pytest.fixture(scope="module", params=["shop", "blog"])
def style(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def project(style: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"bottle-{style}") / "site"
    shutil.copytree(FIXTURE, folder)
    return folder


@pytest.fixture(scope="module")
def served(style: str, project: Path) -> Iterator[Served]:
    with hotmod_serving(f"{style}.wsgi:application", project) as server:
        yield server


def test_nothing_reloads_in_the_first_seconds_after_start(served: Served) -> None:
    assert served.get("/hello")[0] == 200
    deadline = time.monotonic() + 1.5  # longer than the watcher's catch-up and debounce
    while time.monotonic() < deadline:
        assert served.status()["generation"] == 1
        time.sleep(0.1)
    assert served.status()["frameworks"] == ["bottle"]


def test_a_view_edit_shows_on_the_next_request_in_the_same_process(
    served: Served, project: Path, style: str
) -> None:
    before = pid_of(served.get("/hello")[1])
    replace(project / style / "views.py", "hello v1", "hello v2")
    assert pid_of(served.wait_served("/hello", "hello v2")) == before


def test_a_renamed_route_answers_404_and_routes_do_not_pile_up(
    served: Served, project: Path, style: str
) -> None:
    routes_before = served.get("/routes")[1]
    replace(project / style / "views.py", 'route("/hello")', 'route("/hi")')
    served.wait_served("/hi", "hello v2")
    assert served.get("/hello")[0] == 404
    assert served.get("/routes")[1] == routes_before


def test_a_template_edit_shows_without_running_python_code(served: Served, project: Path) -> None:
    assert "page v1" in served.get("/page")[1]  # rendered, so Bottle caches it
    mark = served.mark()
    replace(project / "views" / "page.tpl", "page v1", "page v2")
    served.wait_served("/page", "page v2")
    served.wait_for(r"refreshed .*page\.tpl", after=mark)


def test_a_syntax_error_shows_the_error_page_and_its_fix_serves_again(
    served: Served, project: Path, style: str
) -> None:
    views = project / style / "views.py"
    replace(views, "def page():", "def page(:")
    served.wait_for(r"reload failed: .*views\.py:\d+: SyntaxError")
    code, body = served.get("/hi")
    assert code == 500 and "SyntaxError" in body
    replace(views, "def page(:", "def page():")
    served.wait_served("/hi", "hello v2")


# Only the shop has a restart-only module (its config); this test takes the shop's
# server, the one the other shop tests share.
@pytest.mark.parametrize("style", ["shop"], indirect=True)
def test_a_restart_only_module_restarts_with_the_socket_kept_and_no_request_fails(
    served: Served, project: Path
) -> None:
    mark = served.mark()
    with Hammer(served, "/hi") as hammer:
        replace(project / "shop" / "config.py", "welcome v1", "welcome v2")
        served.wait_for(r"restart needed: .*config\.py", after=mark)
        served.wait_for(r"^hotmod: serving ", after=mark, timeout=60)
        served.wait_served("/greeting", "welcome v2")
        ok_before = hammer.ok
        served.wait_served("/hi", "hello")
    assert hammer.failures == []
    assert hammer.ok > ok_before > 0
    replace(project / "shop" / "views.py", "hello v2", "hello v3")
    served.wait_served("/hi", "hello v3")


@pytest.mark.slow
def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(
    served: Served, project: Path, style: str
) -> None:
    views = project / style / "views.py"
    routes = served.get("/routes")[1]
    descriptors = served.descriptors()
    text = views.read_text()
    # The route as the tests before this one left it (`make stress` runs this one alone).
    url = "/hi" if 'route("/hi")' in text else "/hello"
    for n in range(20):
        views.write_text(text.replace("hello v", f"edit {n} hello v"))
        served.wait_served(url, f"edit {n} hello")
    assert served.get("/routes")[1] == routes
    assert served.status()["leaked"] == []
    assert served.descriptors() <= descriptors + 2
    assert "leak" not in "\n".join(served.lines)
