"""The Falcon tutorial's first app (``things.app:app``: a ``falcon.App`` and a
resource module), served by ``hotmod serve`` with no flags. Falcon keeps no state
outside the app object the target module builds, so it needs no support: this test
keeps it working."""

from __future__ import annotations

from pathlib import Path

from support import Served, replace, twenty_edits

TARGET = "things.app:app"
FIXTURE = "falcon"
PACKAGE = "things"
KANT = "~ Immanuel Kant"


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out
    assert server.get("/things")[0] == 200


def test_a_resource_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    replace(pkg / "resources.py", KANT, "~ Kant, edited")
    server.wait_served("/things", "~ Kant, edited")
    assert server.process.poll() is None  # still serving
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted (execv keeps the pid)
    replace(pkg / "resources.py", "~ Kant, edited", KANT)
    server.wait_served("/things", KANT)


def test_a_routing_edit_adds_a_route_and_a_renamed_route_answers_404(server: Served, pkg: Path) -> None:
    replace(pkg / "app.py", "app.add_route('/things', ThingsResource())",
            "app.add_route('/stuff', ThingsResource())")
    server.wait_served("/stuff", KANT)
    assert server.get("/things")[0] == 404
    replace(pkg / "app.py", "app.add_route('/stuff', ThingsResource())",
            "app.add_route('/things', ThingsResource())")
    server.wait_served("/things", KANT)
    assert server.get("/stuff")[0] == 404


def test_a_syntax_error_shows_the_error_page_and_its_fix_shows(server: Served, pkg: Path) -> None:
    replace(pkg / "resources.py", "def on_get(self, req, resp):", "def on_get(self, req, resp:")
    page = server.wait_served("/things", "SyntaxError", status=500)
    assert "resources.py" in page
    replace(pkg / "resources.py", "def on_get(self, req, resp:", "def on_get(self, req, resp):")
    server.wait_served("/things", KANT)


def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(server: Served, pkg: Path) -> None:
    def text(n: int) -> tuple[str, str]:
        served = f"~ Kant, edit {n}" if n else KANT
        return served, served

    twenty_edits(server, pkg / "resources.py", "/things", text)
