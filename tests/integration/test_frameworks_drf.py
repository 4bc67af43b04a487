"""Django REST framework behind ``hotmod serve`` with no flags, in the layout of its
tutorial (``django-admin startproject mysite``, ``manage.py startapp snippets``,
a pagination class named in ``REST_FRAMEWORK``), over real HTTP. One server for
the module; the edits run in sequence.

DRF resolves ``DEFAULT_PAGINATION_CLASS`` once and binds the class as a class
attribute of its own ``GenericAPIView``: an edit of the pagination module reloads
in-process, but the old class stays in use. The stale check (rule 3 of issue 20)
must name that holder and restart the process with its socket kept, so that the
new class serves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Hammer, Served, django_project, hotmod_serving, replace

pytest.importorskip("django")
pytest.importorskip("rest_framework")

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "drf_snippets"

REST_FRAMEWORK = """
REST_FRAMEWORK = {
    "DEFAULT_PAGINATION_CLASS": "snippets.pagination.StandardPagination",
    "PAGE_SIZE": 3,
}
"""

#: What the log must say once the stale check has run (a regular expression).
HOLDER = (
    r"stale code: rest_framework\.generics\.GenericAPIView\.pagination_class still holds"
    r" snippets\.pagination\.StandardPagination of generation 1"
)


def make_project(folder: Path) -> Path:
    """startproject + startapp, then the fixture's pagination, views and URLconf;
    ``rest_framework`` and ``snippets`` installed, ``snippets.urls`` included by name."""
    return django_project(folder, "snippets", FIXTURE, installed=["rest_framework"], settings=REST_FRAMEWORK)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("drf"))


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with hotmod_serving("mysite.wsgi:application", project) as server:
        yield server


def restarts(served: Served, after: int) -> list[str]:
    return [line for line in served.hotmod_lines(after) if line.startswith("hotmod: restarting")]


def test_the_configured_pagination_class_serves(served: Served) -> None:
    code, body = served.get("/snippets/")
    assert code == 200 and '"pagination":"v1"' in body and '"count":7' in body


def test_a_view_edit_reloads_in_process_and_nothing_is_stale(served: Served, project: Path) -> None:
    mark = served.mark()
    replace(project / "snippets" / "views.py", '"views": "v1"', '"views": "v2"')
    served.wait_served("/snippets/pid/", '"views":"v2"')
    # Longer than the leak check's delay and its second look (1 s each by default).
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert served.status()["stale"] == []
        time.sleep(0.1)
    assert served.status()["restart_needed"] is None
    assert restarts(served, mark) == []


def test_a_pagination_edit_names_the_holder_restarts_with_the_socket_kept_and_serves_the_new_class(
    served: Served, project: Path
) -> None:
    # Served once, so that DRF has bound the class (it does so when the URLconf
    # first imports the views).
    served.wait_served("/snippets/", '"pagination":"v1"')
    mark = served.mark()
    with Hammer(served, "/snippets/pid/") as hammer:
        replace(project / "snippets" / "pagination.py", '"pagination": "v1"', '"pagination": "v2"')
        # Either the new class serves in-process, or hotmod restarts itself and then it
        # does: bounded by the edit timeout either way.
        served.wait_served("/snippets/", '"pagination":"v2"')
        ok_before = hammer.ok
        served.wait_served("/snippets/pid/", '"pid":')
    assert hammer.failures == []  # the socket stayed open through the restart
    assert hammer.ok > ok_before > 0
    served.wait_for(HOLDER, after=mark)
    served.wait_for(r"^hotmod: restarting: .*GenericAPIView\.pagination_class", after=mark)
    served.wait_for(r"^hotmod: serving ", after=mark)
    status = served.status()
    assert (status["generation"], status["restart_needed"], status["stale"]) == (1, None, [])


@pytest.mark.slow  # make stress: the suite keeps its first proof of the same
def test_after_the_restart_nothing_restarts_again_without_an_edit(served: Served) -> None:
    mark = served.mark()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert served.get("/snippets/")[0] == 200
        time.sleep(0.1)
    assert restarts(served, mark) == []
    assert served.status()["generation"] == 1


def test_the_next_pagination_edit_is_caught_the_same_way(served: Served, project: Path) -> None:
    mark = served.mark()
    replace(project / "snippets" / "pagination.py", '"pagination": "v2"', '"pagination": "v3"')
    served.wait_served("/snippets/", '"pagination":"v3"')
    served.wait_for(HOLDER, after=mark)
    assert len(restarts(served, mark)) == 1
