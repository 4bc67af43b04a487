"""PasteDeploy ``.ini`` targets (middleware/_paste.py): read as ``pserve`` reads them,
resolved to a factory without importing it, served by ``HotReload``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from werkzeug.test import Client

from hotmod.middleware import HotReload
from hotmod.middleware._paste import is_ini_target, load_ini_target
from hotmod.reloader import TargetError

FACTORY = """
    from iniapp import views

    def main(global_config, **settings):
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            body = f"{views.TEXT} {settings['greeting']} {global_config['here']}"
            return [body.encode()]
        return app
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def iniapp(project: Path) -> Path:
    """A package ``iniapp`` with a ``paste.app_factory`` entry point (an egg-info beside
    it, as ``pip install -e .`` leaves) and a development.ini naming it."""
    write(project / "iniapp" / "__init__.py", FACTORY)
    write(project / "iniapp" / "views.py", "TEXT = 'one'\n")
    write(project / "iniapp.egg-info" / "PKG-INFO", "Metadata-Version: 2.1\nName: iniapp\nVersion: 0.0\n")
    write(project / "iniapp.egg-info" / "entry_points.txt", "[paste.app_factory]\nmain = iniapp:main\n")
    return write(project / "development.ini", """
        [DEFAULT]
        shared = from-defaults

        [app:main]
        use = egg:iniapp
        greeting = hello

        [app:other]
        use = call:iniapp:main
        greeting = bonjour %(here)s

        [app:explicit]
        paste.app_factory = iniapp:main
        greeting = hi

        [pipeline:piped]
        pipeline = egg:Paste#cgitb main

        [server:main]
        use = egg:waitress#main
        listen = localhost:6543
    """)


def test_only_ini_files_are_ini_targets() -> None:
    assert is_ini_target("development.ini")
    assert is_ini_target("conf/development.ini#other")
    assert not is_ini_target("shop.app:app")
    assert not is_ini_target("shop.ini_tools:app")


def test_an_ini_file_resolves_to_its_factory_and_settings_without_importing_it(iniapp: Path) -> None:
    target = load_ini_target(str(iniapp))
    assert target.factory == "iniapp:main()"
    assert target.settings == {"greeting": "hello"}
    assert target.global_config["here"] == str(iniapp.parent)
    assert target.global_config["__file__"] == str(iniapp)
    assert target.global_config["shared"] == "from-defaults"
    assert target.port() == 6543
    assert "iniapp" not in sys.modules  # the engine must be the first to import it


def test_other_sections_call_and_explicit_factories_are_read_too(iniapp: Path) -> None:
    other = load_ini_target(f"{iniapp}#other")
    assert (other.name, other.factory) == ("other", "iniapp:main()")
    assert other.settings == {"greeting": f"bonjour {iniapp.parent}"}
    assert load_ini_target(f"{iniapp}#explicit").settings == {"greeting": "hi"}


def test_unservable_ini_targets_are_one_line_errors_naming_the_file(
    iniapp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TargetError, match="pipelines, filters"):
        load_ini_target(f"{iniapp}#piped")
    with pytest.raises(TargetError, match="nosuch"):
        load_ini_target(f"{iniapp}#nosuch")
    with pytest.raises(TargetError, match=r"missing\.ini: no such file"):
        load_ini_target(str(iniapp.parent / "missing.ini"))
    write(iniapp, "[app:main]\nuse = egg:notinstalled\n")
    with pytest.raises(TargetError, match="no installed distribution 'notinstalled'"):
        load_ini_target(str(iniapp))
    monkeypatch.setitem(sys.modules, "paste.deploy", None)  # as if PasteDeploy were not installed
    with pytest.raises(TargetError, match=r"needs PasteDeploy \(pip install PasteDeploy\)") as info:
        load_ini_target(str(iniapp))
    assert "\n" not in str(info.value)


def test_hot_reload_serves_an_ini_target_and_calls_its_factory_per_generation(
    iniapp: Path, apps: list[HotReload]
) -> None:
    app = HotReload(str(iniapp), scan_interval=3600.0)
    apps.append(app)
    assert app.reloader.roots.paths == (str(iniapp.parent),)
    client = Client(app)
    assert client.get("/").text == f"one hello {iniapp.parent}"
    write(iniapp.parent / "iniapp" / "views.py", "TEXT = 'two'\n")
    assert app.reload() == 2
    assert client.get("/").text == f"two hello {iniapp.parent}"


def test_a_paste_factory_named_as_a_target_points_at_its_ini_file(iniapp: Path) -> None:
    with pytest.raises(TargetError, match=r"PasteDeploy app factory .*hotmod serve development\.ini"):
        HotReload("iniapp:main()", scan_interval=3600.0)
