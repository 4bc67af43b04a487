"""Flask support with Flask-SQLAlchemy (middleware/_frameworks/_flask.py), in process,
on the app of tests/fixtures/frameworks/flask_sqla/ (the documented app-factory
layout): a retired generation's app disposes its engines when it retires (issue 20,
rules 6 and 7), and an edit of ``models.py`` loads in-process with a fresh ``db``.

The engine is driven directly, with the garbage collector off and the leak check
put off, so that nothing but the retirement hook can close a retired app's
connections: the same edits with the hook turned off are the control."""

from __future__ import annotations

import gc
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.dialects.postgresql.psycopg  # (see the note below the imports)
import sqlalchemy.dialects.sqlite  # noqa: F401  (see the note below the imports)
from flask_sqlalchemy import SQLAlchemy  # noqa: F401  (see the note below the imports)
from support import FRAMEWORK_FIXTURES, replace, wait_until
from werkzeug.test import Client

from hotmod.middleware._frameworks import attach
from hotmod.reloader import Extension, Reloader, ReloadEvent

# Imported here although no test names them: the ``project`` fixture's
# ``clean_modules`` drops every module first imported during a test, and a second copy
# of SQLAlchemy's modules (its dialects loaded by name) breaks the first one's objects.

TARGET = "inventory:create_app()"
EDITS = 8


@pytest.fixture
def inventory(project: Path) -> Path:
    shutil.copytree(FRAMEWORK_FIXTURES / "flask_sqla" / "inventory", project / "inventory")
    return project / "inventory"


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Nothing but our hook may close a retired app's connections during the test."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.collect()  # the retired apps, and their connections, go now


class Served:
    """The inventory on an engine with Flask support, each request entering the
    current generation as HotReload does; ``retired`` waits for a retirement."""

    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader
        self._retired: set[int] = set()
        self._changed = threading.Condition()  # guards _retired
        reloader.subscribe(self._on_event)
        self.support = attach(reloader, debug=True)[0]

    def _on_event(self, event: ReloadEvent) -> None:
        if event.kind == "retired":  # published after the purges and the retired() hooks
            with self._changed:
                self._retired.add(event.generation)
                self._changed.notify_all()

    def get(self, path: str) -> tuple[int, str]:
        gen = self.reloader.acquire()
        try:
            response = Client(gen.target).get(path)
            return response.status_code, response.text
        finally:
            gen.exit()

    def reload(self, path: Path) -> int:
        before = self.reloader.current.number
        number = self.reloader.reload([path])
        assert number == before + 1
        with self._changed:
            assert self._changed.wait_for(lambda: before in self._retired, timeout=10), (
                f"generation {before} did not retire"
            )
        return number


@pytest.fixture
def served(inventory: Path, engines: Callable[..., Reloader], no_gc: None) -> Served:
    reloader = engines(TARGET, leak_check_delay=3600.0)  # no collection by the leak check
    reloader.load()
    return Served(reloader)


def descriptors_on(path: Path) -> int:
    """How many of this process's open descriptors lead to ``path``."""
    real = os.path.realpath(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                count += 1
        except OSError:  # closed since it was listed
            continue
    return count


def edit_views_8_times(served: Served, inventory: Path) -> list[int]:
    """Eight edits of the view module, each served; the descriptors on the database
    file after each (the edit's generation served once, its predecessor retired)."""
    counts = []
    views = inventory / "main" / "views.py"
    for n in range(1, EDITS + 1):
        replace(views, f'heading="Inventory{n - 1 if n > 1 else ""}"', f'heading="Inventory{n}"')
        served.reload(views)
        assert served.get("/")[1].count(f"<h1>Inventory{n}</h1>") == 1
        counts.append(descriptors_on(database(inventory)))
    return counts


def database(inventory: Path) -> Path:
    return inventory.parent / "instance" / "inventory.db"


@pytest.mark.parametrize("hook", ["on", "off"])
def test_a_retired_generation_closes_its_sqlite_connections_when_it_retires(
    served: Served, inventory: Path, hook: str
) -> None:
    """Issue 20, rule 6: 8 edits of a view, each making a new app with its own engine.
    With the hook, the descriptors on the .db file stay at what the first app holds;
    without it (the control), every retired app keeps its pooled connection until
    a garbage collection, one more descriptor per edit."""
    if hook == "off":
        served.support.retired = Extension().retired  # type: ignore[method-assign]
    status, page = served.get("/")
    assert status == 200 and "widget: 3" in page
    first = descriptors_on(database(inventory))
    assert first >= 1  # the first app's pooled connection
    counts = edit_views_8_times(served, inventory)
    if hook == "on":
        assert counts == [first] * EDITS
    else:
        assert counts == [first + n for n in range(1, EDITS + 1)]


@pytest.mark.postgres
@pytest.mark.parametrize("hook", ["on", "off"])
def test_a_retired_generation_closes_its_postgresql_backends_when_it_retires(
    inventory: Path, engines: Callable[..., Reloader], no_gc: None, pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch, hook: str,
) -> None:
    """The same on PostgreSQL, where each retired pool is a backend: counted in
    ``pg_stat_activity`` by this run's ``application_name``, in a schema of its own."""
    name = f"hotmod-fsa-{uuid.uuid4().hex[:12]}"
    schema = name.replace("-", "_")
    url = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    separator = "&" if "?" in url else "?"
    monkeypatch.setenv(
        "INVENTORY_DATABASE_URL", f"{url}{separator}application_name={name}&options=-csearch_path%3D{schema}"
    )
    with psycopg.connect(pg_dsn, autocommit=True) as observer:
        observer.execute(f"CREATE SCHEMA {schema}")
        try:

            def backends() -> int:
                row = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
                ).fetchone()
                assert row is not None
                return int(row[0])

            reloader = engines(TARGET, leak_check_delay=3600.0)
            reloader.load()
            served = Served(reloader)
            if hook == "off":
                served.support.retired = Extension().retired  # type: ignore[method-assign]
            assert "widget: 3" in served.get("/")[1]
            assert backends() == 1
            views = inventory / "main" / "views.py"
            counts = []
            for n in range(1, EDITS + 1):
                replace(views, f'heading="Inventory{n - 1 if n > 1 else ""}"', f'heading="Inventory{n}"')
                served.reload(views)
                assert f"<h1>Inventory{n}</h1>" in served.get("/")[1]
                counts.append(backends())
            reloader.close()
            gc.collect()  # the control's retired pools close now
            wait_until(lambda: backends() == 0, what="every backend of this run closed")
        finally:
            observer.execute(f"DROP SCHEMA {schema} CASCADE")
    assert counts == ([1] * EDITS if hook == "on" else list(range(2, EDITS + 2)))


def test_disposal_is_logged_at_debug_naming_the_generation_and_the_database(
    served: Served, inventory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served.get("/")
    with caplog.at_level("DEBUG", logger="hotmod.frameworks"):
        served.reload(inventory / "main" / "views.py")
    [line] = [r.getMessage() for r in caplog.records if "disposed" in r.getMessage()]
    assert line.startswith("generation 1 retired: disposed the SQLAlchemy engines of Flask app inventory:")
    assert f"default (sqlite:///{database(inventory)})" in line


DUO_APP = """
import os
from flask import Flask
from duo.extensions import db

VERSION = 1
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(os.environ["DUO_DATA"], "{name}.db")
db.init_app(app)


@app.route("/")
def home():
    return f"{name} {{VERSION}} {{db.session.scalar(db.text('select 1'))}}"
"""


def test_an_app_the_current_generation_still_serves_keeps_its_engines(
    write: Callable[[str, str], Path], project: Path, engines: Callable[..., Reloader],
    no_gc: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two apps behind werkzeug's DispatcherMiddleware, one module each: an edit of
    the API makes a new API app, while the front app is shared by every generation.
    Retiring the old generation disposes the old API app's engines only."""
    monkeypatch.setenv("DUO_DATA", str(project))
    write("duo/__init__.py", "")
    write("duo/extensions.py", "from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n")
    write("duo/front.py", DUO_APP.format(name="front"))
    write("duo/api.py", DUO_APP.format(name="api"))
    write("duo/wsgi.py", """
        from werkzeug.middleware.dispatcher import DispatcherMiddleware
        from duo import api, front

        application = DispatcherMiddleware(front.app, {"/api": api.app})
    """)
    reloader = engines("duo.wsgi:application", leak_check_delay=3600.0)
    reloader.load()
    served = Served(reloader)
    front_app = reloader.current.modules["duo.front"].app
    assert served.get("/") == (200, "front 1 1") and served.get("/api/") == (200, "api 1 1")
    for n in range(2, 2 + EDITS):
        replace(project / "duo" / "api.py", f"VERSION = {n - 1}", f"VERSION = {n}")
        served.reload(project / "duo" / "api.py")
        assert served.get("/api/") == (200, f"api {n} 1") and served.get("/") == (200, "front 1 1")
        assert descriptors_on(project / "api.db") == 1
    assert reloader.current.modules["duo.front"].app is front_app
    assert descriptors_on(project / "front.db") == 1
    with front_app.app_context():
        pool = front_app.extensions["sqlalchemy"].engine.pool
    assert pool.checkedin() == 1  # the connection it had from the start: never disposed


def test_a_wrapped_apps_engines_are_disposed_too(
    inventory: Path, engines: Callable[..., Reloader], no_gc: None
) -> None:
    """WSGI middleware around the app (ProxyFix, as a factory of a proxied site
    returns it): Flask support finds the app inside and disposes its engines."""
    replace(inventory / "__init__.py", "    return app\n",
            "    from werkzeug.middleware.proxy_fix import ProxyFix\n\n    return ProxyFix(app)\n")
    reloader = engines(TARGET, leak_check_delay=3600.0)
    reloader.load()
    served = Served(reloader)
    assert "widget: 3" in served.get("/")[1]
    first = descriptors_on(database(inventory))
    assert edit_views_8_times(served, inventory) == [first] * EDITS


# -- models.py, in process ------------------------------------------------------------


def test_an_edit_of_models_loads_in_process_with_a_fresh_db_three_times(
    served: Served, inventory: Path
) -> None:
    """Issue 20: re-running models.py on the old ``db`` fails with "Table
    'inventory_item' is already defined for this MetaData instance". The plan also
    re-runs extensions.py, so each generation has its own ``db`` and MetaData."""
    models = inventory / "models.py"
    dbs = [served.reloader.current.modules["inventory.extensions"].db]
    assert served.get("/items") == (200, "<Item widget>")
    for n in range(1, 4):
        replace(models, f"<Item{n - 1 if n > 1 else ''} {{self.name}}>", f"<Item{n} {{self.name}}>")
        served.reload(models)
        assert served.get("/items") == (200, f"<Item{n} widget>")
        assert "widget: 3" in served.get("/")[1]
        fresh = served.reloader.current.modules
        dbs.append(fresh["inventory.extensions"].db)
        assert fresh["inventory.models"].Item.metadata is dbs[-1].metadata
    assert len({id(db) for db in dbs}) == 4
    assert served.reloader.stats()["failures"] == 0


def test_a_column_added_to_a_model_is_served_once_the_table_has_it(served: Served, inventory: Path) -> None:
    """The new class maps the new column on the new MetaData; the database gets it
    as a fresh process would need it too (a migration; here an ALTER TABLE)."""
    app = served.reloader.current.target
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        db.session.execute(db.text("ALTER TABLE inventory_item ADD COLUMN colour VARCHAR(20) DEFAULT 'red'"))
        db.session.commit()
    replace(inventory / "models.py", "    def __repr__(self):\n        return f\"<Item {self.name}>\"",
            "    colour = db.Column(db.String(20))\n\n    def __repr__(self):\n"
            "        return f\"<Item {self.name} {self.colour}>\"")
    served.reload(inventory / "models.py")
    assert served.get("/items") == (200, "<Item widget red>")


def test_a_plan_without_models_leaves_the_db_alone(served: Served, inventory: Path) -> None:
    db = served.reloader.current.modules["inventory.extensions"].db
    replace(inventory / "main" / "views.py", 'heading="Inventory"', 'heading="Stock"')
    served.reload(inventory / "main" / "views.py")
    assert "<h1>Stock</h1>" in served.get("/")[1]
    assert served.reloader.current.modules["inventory.extensions"].db is db


def test_models_declared_on_a_shared_metadata_bring_its_module_into_the_plan(
    inventory: Path, engines: Callable[..., Reloader], no_gc: None
) -> None:
    """``db = SQLAlchemy(metadata=metadata)`` with the MetaData made in a module of
    its own (naming conventions): that module runs again too."""
    (inventory / "base.py").write_text(
        "import sqlalchemy as sa\n\nmetadata = sa.MetaData(naming_convention={'pk': 'pk_%(table_name)s'})\n"
    )
    replace(inventory / "extensions.py", "from flask_sqlalchemy import SQLAlchemy\n",
            "from flask_sqlalchemy import SQLAlchemy\n\nfrom .base import metadata\n")
    replace(inventory / "extensions.py", "db = SQLAlchemy()", "db = SQLAlchemy(metadata=metadata)")
    reloader = engines(TARGET, leak_check_delay=3600.0)
    reloader.load()
    served = Served(reloader)
    before = reloader.current.modules["inventory.base"].metadata
    replace(inventory / "models.py", "<Item {self.name}>", "<Item: {self.name}>")
    served.reload(inventory / "models.py")
    assert served.get("/items") == (200, "<Item: widget>")
    assert reloader.current.modules["inventory.base"].metadata is not before
