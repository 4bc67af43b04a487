"""The middleware side of restart-only edits and framework detection, in process."""

from __future__ import annotations

from pathlib import Path

from conftest import Write
from werkzeug.test import Client

from hotmod.middleware import HotReload
from hotmod.middleware.cli import describe_event
from hotmod.reloader import ReloadEvent

APP = """
from app import config

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [config.GREETING.encode()]
"""


def make_app(write: Write) -> None:
    write("app/__init__.py", "")
    write("app/config.py", "__hotmod_restart__ = 'config is read once'\nGREETING = 'v1'\n")
    write("app/wsgi.py", APP)


def test_in_another_server_debug_mode_answers_restart_needed_until_restarted(
    project: Path, write: Write
) -> None:
    make_app(write)
    hot = HotReload("app.wsgi:app", debug=True, scan_interval=3600.0)
    try:
        client = Client(hot)
        assert client.get("/").text == "v1"
        write("app/config.py", "__hotmod_restart__ = 'config is read once'\nGREETING = 'v2'\n")
        assert hot.reload() == 1
        response = client.get("/")
        assert response.status_code == 503
        assert "Restart needed" in response.text and "config is read once" in response.text
        assert str(project / "app" / "config.py") in response.text
        status = client.get("/__hotmod__").json
        assert status["restart_needed"]["modules"] == ["app.config"]
        assert status["frameworks"] == []
    finally:
        hot.close()


def test_in_another_server_production_mode_keeps_serving_the_last_generation(
    project: Path, write: Write
) -> None:
    make_app(write)
    hot = HotReload("app.wsgi:app", scan_interval=3600.0)
    try:
        write("app/config.py", "__hotmod_restart__ = 'config is read once'\nGREETING = 'v2'\n")
        hot.reload()
        assert Client(hot).get("/").text == "v1"
        assert hot.reloader.restart_needed is not None
    finally:
        hot.close()


def test_the_serve_command_prints_one_line_per_new_event_kind() -> None:
    restart = ReloadEvent("restart_needed", 3, ("polls.models",), detail="polls.models: why",
                          files=("/p/polls/models.py",))
    assert describe_event(restart) == (
        "hotmod: restart needed: /p/polls/models.py changed (polls.models: why);"
        " generation 3 keeps serving until the restart"
    )
    refreshed = ReloadEvent("refreshed", 2, detail="/p/t.html", files=("/p/t.html",))
    assert describe_event(refreshed) == "hotmod: generation 2: refreshed /p/t.html"
    unreached = ReloadEvent("unreached", 4, ("app.helpers",), detail="the served target ...")
    assert describe_event(unreached) == (
        "hotmod: generation 4: loaded app.helpers, but the served target ..."
    )
