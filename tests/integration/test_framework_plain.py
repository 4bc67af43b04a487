"""A plain WSGI app (a routes table and a views module, no framework), served by
``hotmod serve`` with no flags: the case hotmod was built for, kept working."""

from __future__ import annotations

from pathlib import Path

from support import Served, replace, twenty_edits

TARGET = "plainapp.wsgi:application"
FIXTURE = "plain"
PACKAGE = "plainapp"


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out
    assert server.get("/") == (200, "home page")


def test_a_view_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    replace(pkg / "views.py", "'home page'", "'home page, edited'")
    server.wait_served("/", "home page, edited")
    assert server.process.poll() is None  # still serving
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted (execv keeps the pid)
    replace(pkg / "views.py", "'home page, edited'", "'home page'")
    server.wait_served("/", "home page")


def test_a_routing_edit_adds_a_route_and_a_renamed_route_answers_404(server: Served, pkg: Path) -> None:
    replace(pkg / "wsgi.py", "'/': views.home,", "'/home': views.home,")
    server.wait_served("/home", "home page")
    assert server.get("/")[0] == 404
    replace(pkg / "wsgi.py", "'/home': views.home,", "'/': views.home,")
    server.wait_served("/", "home page")
    assert server.get("/home")[0] == 404


def test_a_syntax_error_shows_the_error_page_and_its_fix_shows(server: Served, pkg: Path) -> None:
    replace(pkg / "views.py", "def home(environ):", "def home(environ:")
    page = server.wait_served("/", "SyntaxError", status=500)
    assert "views.py" in page
    replace(pkg / "views.py", "def home(environ:", "def home(environ):")
    server.wait_served("/", "home page")


def test_an_exception_in_a_view_shows_the_traceback_page_in_debug_mode(server: Served, pkg: Path) -> None:
    replace(pkg / "views.py", "return '200 OK', 'home page'", "return 1 / 0")
    page = server.wait_served("/", "ZeroDivisionError", status=500)
    assert "views.py" in page and "GET /" in page
    replace(pkg / "views.py", "return 1 / 0", "return '200 OK', 'home page'")
    server.wait_served("/", "home page")


def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(server: Served, pkg: Path) -> None:
    def text(n: int) -> tuple[str, str]:
        served = f"home page, edit {n}" if n else "home page"
        return f"'{served}'", served

    twenty_edits(server, pkg / "views.py", "/", text)
