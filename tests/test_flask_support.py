"""Flask support (middleware/_frameworks/_flask.py), in process: template folders of
the app and of blueprints refresh without running Python, ``--extra`` globs do not
change that, and exceptions propagate to hotmod's page in debug mode only."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Write
from support import wait_until
from werkzeug.test import Client

from hotmod.middleware import HotReload

FACTORY = """
from flask import Flask

def create_app():
    app = Flask(__name__)
    from fk_app import shop
    app.register_blueprint(shop.bp)

    @app.route("/")
    def home():
        from flask import render_template
        return render_template("home.html")

    @app.route("/boom")
    def boom():
        raise LookupError("<no such thing>")

    return app
"""

SHOP = """
from flask import Blueprint, render_template

bp = Blueprint("shop", __name__, template_folder="shop_templates")

@bp.route("/shop")
def shop():
    return render_template("shop.html")
"""


@pytest.fixture
def fk_app(write: Write, project: Path) -> Path:
    write("fk_app/__init__.py", FACTORY)
    write("fk_app/shop.py", SHOP)
    write("fk_app/templates/home.html", "home v1")
    write("fk_app/shop_templates/shop.html", "shop v1")
    return project / "fk_app"


def serve(apps: list[HotReload], **options: object) -> HotReload:
    hot = HotReload("fk_app:create_app()", scan_interval=3600.0, **options)  # type: ignore[arg-type]
    apps.append(hot)
    return hot


def test_app_and_blueprint_template_edits_show_without_a_reload(
    fk_app: Path, write: Write, apps: list[HotReload]
) -> None:
    hot = serve(apps, debug=True)
    assert [support.name for support in hot.frameworks] == ["flask"]
    assert hot.frameworks[0].extra() == [
        str(fk_app.resolve() / "templates" / "**" / "*"),
        str(fk_app.resolve() / "shop_templates" / "**" / "*"),
    ]
    client = Client(hot)
    assert (client.get("/").text, client.get("/shop").text) == ("home v1", "shop v1")
    home = write("fk_app/templates/home.html", "home v2")
    shop = write("fk_app/shop_templates/shop.html", "shop v2")
    assert hot.reloader.reload([home, shop]) == 1  # handled by Flask support: no generation
    assert (client.get("/").text, client.get("/shop").text) == ("home v2", "shop v2")
    assert hot.reloader.stats()["reloads"] == 0


def test_a_template_in_a_sub_folder_shows_its_edit_even_with_templates_auto_reload_off(
    fk_app: Path, write: Write, apps: list[HotReload]
) -> None:
    """Issue 20: the watcher reported templates/*.html but not templates/main/*.html,
    so an app with TEMPLATES_AUTO_RELOAD = False served the old template, silently."""
    write(
        "fk_app/nested.py",
        "from flask import Flask, render_template\n"
        "app = Flask(__name__)\n"
        "app.config['TEMPLATES_AUTO_RELOAD'] = False\n"
        "@app.route('/')\n"
        "def page():\n"
        "    return render_template('main/page.html')\n",
    )
    write("fk_app/templates/main/page.html", "page v1")
    hot = HotReload("fk_app.nested:app")  # the real watcher: it is what filters the files
    apps.append(hot)
    client = Client(hot)
    assert client.get("/").text == "page v1"
    write("fk_app/templates/main/page.html", "page v2")
    wait_until(lambda: client.get("/").text == "page v2", what="the sub-folder template's edit")
    assert hot.reloader.stats()["reloads"] == 0  # Flask support refreshed it: no generation


def test_an_extra_glob_on_template_files_runs_no_module_for_them(
    fk_app: Path, write: Write, apps: list[HotReload]
) -> None:
    hot = serve(apps, extra=["*.html"])
    client = Client(hot)
    assert client.get("/").text == "home v1"
    home = write("fk_app/templates/home.html", "home v2")
    assert hot.reloader.reload([home]) == 1
    assert client.get("/").text == "home v2"


def test_debug_mode_shows_the_traceback_page_and_production_keeps_flasks_500(
    fk_app: Path, apps: list[HotReload]
) -> None:
    debug = serve(apps, debug=True)
    page = Client(debug).get("/boom")
    assert page.status_code == 500
    assert "LookupError" in page.text and "&lt;no such thing&gt;" in page.text
    assert "fk_app/__init__.py" in page.text
    assert debug.reloader.current.target.config["PROPAGATE_EXCEPTIONS"] is True

    production = serve(apps)
    answer = Client(production).get("/boom")
    assert answer.status_code == 500
    assert "Internal Server Error" in answer.text and "LookupError" not in answer.text
    assert production.reloader.current.target.config["PROPAGATE_EXCEPTIONS"] is None


def test_settings_the_app_gives_win_and_every_new_generation_is_configured(
    fk_app: Path, write: Write, apps: list[HotReload]
) -> None:
    write("fk_app/__init__.py", FACTORY.replace(
        "app = Flask(__name__)", "app = Flask(__name__)\n    app.config['PROPAGATE_EXCEPTIONS'] = False"
    ))
    hot = serve(apps, debug=True)
    app = hot.reloader.current.target
    assert app.config["PROPAGATE_EXCEPTIONS"] is False
    assert app.config["TEMPLATES_AUTO_RELOAD"] is True
    assert "Internal Server Error" in Client(hot).get("/boom").text  # the app said so
    hot.reloader.reload([fk_app / "shop.py"])
    fresh = hot.reloader.current.target
    assert fresh is not app and fresh.config["TEMPLATES_AUTO_RELOAD"] is True


def test_the_flask_app_inside_wsgi_middleware_is_found_and_configured(
    fk_app: Path, write: Write, apps: list[HotReload]
) -> None:
    """A factory that returns its app wrapped (ProxyFix behind a proxy): the app's
    template folders are watched and its settings made, as for a bare app."""
    write("fk_app/__init__.py", FACTORY.replace(
        "    return app\n",
        "    from werkzeug.middleware.proxy_fix import ProxyFix\n    return ProxyFix(app)\n",
    ))
    hot = serve(apps, debug=True)
    app = hot.reloader.current.target.app
    assert hot.frameworks[0].extra()[0] == str(fk_app.resolve() / "templates" / "**" / "*")
    assert app.config["TEMPLATES_AUTO_RELOAD"] is True and app.config["PROPAGATE_EXCEPTIONS"] is True
    assert "LookupError" in Client(hot).get("/boom").text


def test_wrapped_apps_are_found_through_attributes_mounts_methods_and_closures() -> None:
    from flask import Flask, current_app
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.middleware.proxy_fix import ProxyFix

    from hotmod.middleware._frameworks._flask import wrapped_apps

    front, api = Flask("front"), Flask("api")

    class Holding:
        """Middleware that also keeps a proxy, which raises on any attribute here."""

        def __init__(self, app: object) -> None:
            self.app, self.proxy = app, current_app

    def closing_over(app: object) -> object:
        def middleware(environ: object, start_response: object) -> object:
            return app

        return middleware

    assert wrapped_apps(front, Flask) == [front]
    assert wrapped_apps(ProxyFix(Holding(front)), Flask) == [front]
    assert wrapped_apps(DispatcherMiddleware(front, {"/api": ProxyFix(api)}), Flask) == [front, api]
    assert wrapped_apps(closing_over(ProxyFix(front.wsgi_app)), Flask) == [front]
    assert wrapped_apps(ProxyFix(ProxyFix(ProxyFix(ProxyFix(ProxyFix(front))))), Flask) == []  # too deep
