"""Rule 4 of issue 20: a generation is isolated while the next one is built.

What a request pinned to generation N gets, by every route there is to a module,
while N+1 is being staged (a module of the plan held on an event in another
thread, half executed) and after the swap while N still drains; and what happens
when someone else re-executes one of N's instances in place (a framework's own
reloader). ``lib`` plays the framework: library code outside the watched root.
docs/concurrency.md (*What a request sees*) states what these tests pin."""

from __future__ import annotations

import contextlib
import importlib
import logging
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import Write
from support import wait_until

from hotmod.reloader import Generation, Reloader, ReloadError

LIB = """
import importlib, sys
def by_import_module(name):
    return importlib.import_module(name)
def by_dunder_import(name):
    return __import__(name, None, None, ["_"])
def by_sys_modules(name):
    return sys.modules[name]
def by_package_attribute():
    import app
    return app.helpers
def reload(module):
    return importlib.reload(module)
def exec_in_place(module):
    with open(module.__file__) as f:
        code = compile(f.read(), module.__file__, "exec")
    exec(code, module.__dict__)
def exec_fresh(path):
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    namespace = {"__name__": "settings_like"}
    exec(code, namespace)
    return namespace
"""

GATE = """
import threading
entered = threading.Event()
release = threading.Event()
"""

#: The view: a function-level import statement (the per-instance ``__import__``).
WSGI = """
from app import helpers as _at_import
def app(environ, start_response):
    from app import helpers
    import app.helpers
    return helpers, app.helpers
"""

#: The new helpers: held half-way (VERSION set, DONE not yet) until released.
HELD = "import gate\nVERSION = 2\ngate.entered.set()\ngate.release.wait(10)\nDONE = True\n"


class App(NamedTuple):
    engine: Reloader
    lib: Any
    gate: Any
    helpers: Path

    def stage(self) -> threading.Thread:
        """Start a reload of the held helpers in another thread; return once it is held."""
        self.helpers.write_text(HELD)
        thread = threading.Thread(target=self._reload)
        thread.start()
        assert self.gate.entered.wait(10)
        return thread

    def _reload(self) -> None:
        with contextlib.suppress(ReloadError):  # logged; the test looks at the generation
            self.engine.reload([self.helpers])

    def finish(self, thread: threading.Thread) -> None:
        self.gate.release.set()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def app(project: Path, write: Write, engines: Callable[..., Reloader]) -> App:
    write("lib.py", LIB)
    write("gate.py", GATE)
    write("app/__init__.py", "")
    write("app/helpers.py", "VERSION = 1\nDONE = True\n")
    write("app/wsgi.py", WSGI)
    import gate
    import lib

    engine = engines(roots=[project / "app"])
    engine.load()
    return App(engine, lib, gate, project / "app" / "helpers.py")


def by_name(lib: Any) -> dict[str, Any]:
    routes = ("by_import_module", "by_dunder_import", "by_sys_modules")
    return {how: getattr(lib, how)("app.helpers") for how in routes}


def test_import_statements_resolve_to_their_own_generation_while_staged_and_after_the_swap(app: App) -> None:
    gen1 = app.engine.current
    old = gen1.modules["app.helpers"]
    assert gen1.enter()
    thread = app.stage()
    try:
        assert gen1.target({}, None) == (old, old)  # the half-built instance is never seen
    finally:
        app.finish(thread)
    assert gen1.target({}, None) == (old, old)  # N drains on its own instances
    new = app.engine.current.modules["app.helpers"]
    assert new is not old and app.engine.current.target({}, None) == (new, new)
    gen1.exit()


def test_a_shared_package_attribute_names_the_old_instance_until_the_swap(app: App) -> None:
    old = app.engine.current.modules["app.helpers"]
    thread = app.stage()
    try:
        assert app.lib.by_package_attribute() is old
        assert vars(sys.modules["app"])["helpers"] is old
    finally:
        app.finish(thread)
    assert app.lib.by_package_attribute() is app.engine.current.modules["app.helpers"]


def test_an_import_by_name_from_library_code_waits_for_the_plans_instance_to_finish(app: App) -> None:
    """``sys.modules`` names the plan's instances from the moment each one begins
    executing, since the new generation's own code and the target's factory look
    modules up there by name (docs/concurrency.md). An *import* by name from another
    thread (``importlib.import_module``, ``__import__``: a framework's per-request
    lookup) then waits for the instance's code to finish, as during a first import,
    and never gets it half run. Only a bare ``sys.modules[name]`` read sees it
    half run."""
    old = app.engine.current.modules["app.helpers"]
    thread = app.stage()
    got: dict[str, Any] = {}

    def import_by_name() -> None:
        got["import_module"] = app.lib.by_import_module("app.helpers")
        got["__import__"] = app.lib.by_dunder_import("app.helpers")

    importer = threading.Thread(target=import_by_name, daemon=True)
    try:
        staged = app.lib.by_sys_modules("app.helpers")
        assert staged is not old and staged.VERSION == 2 and not hasattr(staged, "DONE")
        importer.start()
        importer.join(0.5)  # the absence of an answer can only be watched for a while
        assert importer.is_alive() and got == {}  # waiting on the module's import lock
    finally:
        app.finish(thread)
    importer.join(10)
    assert got["import_module"] is got["__import__"] is staged
    assert staged.DONE is True  # whole by the time the import returned it
    assert staged is app.engine.current.modules["app.helpers"]


def test_a_lookup_by_name_gets_the_current_generation_again_once_a_plan_is_discarded(app: App) -> None:
    old = app.engine.current.modules["app.helpers"]
    (app.helpers.parent / "wsgi.py").write_text(WSGI + "\nraise RuntimeError('broken importer')\n")
    thread = app.stage()
    try:
        # A bare read (an import by name would wait for the module's code: see above).
        assert app.lib.by_sys_modules("app.helpers") is not old
    finally:
        app.finish(thread)
    assert app.engine.current.number == 1
    assert set(map(id, by_name(app.lib).values())) == {id(old)}


def test_a_lookup_by_name_from_library_code_gets_the_newest_generation_after_the_swap(app: App) -> None:
    gen1 = app.engine.current
    old = gen1.modules["app.helpers"]
    assert gen1.enter()
    app.finish(app.stage())
    new = app.engine.current.modules["app.helpers"]
    assert set(map(id, by_name(app.lib).values())) == {id(new)}  # for a request on N too
    assert gen1.target({}, None) == (old, old)  # while its own imports stay on N
    gen1.exit()


# -- someone else re-executes an instance in place --------------------------------------------


def namespace_snapshot(module: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items() if not k.startswith("__")}


@pytest.mark.parametrize("how", ["reload", "exec_in_place"])
def test_a_generations_instance_re_executed_in_place_is_refused_and_its_caller_named_once(
    app: App, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    gen1: Generation = app.engine.current
    helpers = gen1.modules["app.helpers"]
    spec, before = helpers.__spec__, namespace_snapshot(helpers)
    app.helpers.write_text("VERSION = 3\nDONE = True\n")  # a framework's reloader saw this
    with caplog.at_level(logging.WARNING, logger="hotmod"):
        for _ in range(2):
            with pytest.raises(ImportError, match=r"app\.helpers belongs to generation 1"):
                getattr(app.lib, how)(helpers)
    assert namespace_snapshot(helpers) == before  # generation 1 stays whole
    assert helpers.__spec__ is spec
    assert sys.modules["app.helpers"] is helpers
    warnings = [r.getMessage() for r in caplog.records if "in place" in r.getMessage()]
    assert len(warnings) == 1  # once per caller and module
    assert "lib.py:" in warnings[0] and "app.helpers of generation 1" in warnings[0]
    assert app.engine.reload([app.helpers]) == 2  # the edit itself loads as usual
    assert app.engine.current.modules["app.helpers"].VERSION == 3


def test_code_of_the_roots_run_into_a_fresh_namespace_is_not_refused(app: App, project: Path) -> None:
    """A config file executed into a dict (Flask's ``from_pyfile``), ``runpy``, a module
    imported by name the first time: none re-executes an instance."""
    (project / "app" / "late.py").write_text("LATE = 1\n")
    assert app.lib.exec_fresh(str(app.helpers))["VERSION"] == 1
    assert runpy.run_path(str(app.helpers))["VERSION"] == 1
    assert importlib.import_module("app.late").LATE == 1


def test_a_plan_still_reloads_a_module_in_place_of_its_own(app: App) -> None:
    """The guard looks only outside plans: a plan's own execution (and a clone hook
    that runs code of the roots) is never refused."""
    app.helpers.write_text("VERSION = 5\nDONE = True\n")
    assert app.engine.reload([app.helpers]) == 2
    assert app.engine.current.target({}, None)[0].VERSION == 5


def test_a_retired_instance_is_not_guarded(app: App) -> None:
    """Once its generation retired, an instance is no generation's: re-executing it
    changes no code that a request runs (and the leak check still watches it)."""
    gen1 = app.engine.current
    old = gen1.modules["app.helpers"]
    app.helpers.write_text("VERSION = 6\nDONE = True\n")
    app.engine.reload([app.helpers])
    wait_until(lambda: gen1.table is None, what="generation 1 retired")
    app.lib.exec_in_place(old)
    assert old.VERSION == 6


def test_a_module_loaded_by_name_and_not_yet_adopted_is_guarded_too(app: App, project: Path) -> None:
    """web.py imports its views by name on the first request: until the next reload
    adopts it, the current generation serves it all the same. (Guarded against
    ``importlib.reload``, which names the module it re-executes; an ``exec`` into its
    namespace is not seen: it carries no token of ours.)"""
    (project / "app" / "late.py").write_text("import uuid\nMARK = uuid.uuid4().hex\n")
    late = app.lib.by_import_module("app.late")
    mark = late.MARK
    assert "app.late" not in app.engine.current.modules  # a stray, for now
    with pytest.raises(ImportError, match=r"app\.late belongs to generation 1"):
        app.lib.reload(late)
    assert late.MARK == mark
