"""The engine, with real files in a temporary watched root and real threads."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Write
from support import wait_until

from hotmod.reloader import HotmodError, Reloader, ReloadError, TargetError

# Modules whose hooks record what happened in a registry that survives reloads:
# `events` lives in a module nobody reloads (it is outside the app package).
EVENTS = """
log = []
"""

DB_WITH_HOOKS = """
import events
if "pool" not in globals():
    pool = object()
    events.log.append(("open", __name__))
events.log.append(("exec", "pool" in globals(), globals().get("VALUE")))
VALUE = {value}

def __mp_clone__(new):
    events.log.append(("clone", new.__name__, sorted(k for k in vars(new) if not k.startswith("__"))))
    new.pool = pool
    new.VALUE = "cloned"

def __mp_purge__():
    events.log.append(("purge", id(pool)))
"""

APP = """
from app.db import VALUE, pool

def app(environ, start_response):
    return VALUE
"""


@pytest.fixture
def events(write: Write) -> list[object]:
    write("events.py", EVENTS)
    import events as mod  # a plain, non-reloadable module (outside the root below)

    return mod.log  # type: ignore[no-any-return]


@pytest.fixture
def app(write: Write, project: Path, events: list[object]) -> Path:
    write("app/__init__.py", "")
    write("app/db.py", DB_WITH_HOOKS.format(value=1))
    write("app/wsgi.py", APP)
    return project / "app"


def test_clone_runs_before_new_code_and_new_code_sees_cloned_values(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    r = engines()
    r.load()
    old_pool = r.current.modules["app.db"].pool
    events.clear()
    write("app/db.py", DB_WITH_HOOKS.format(value=2))
    assert r.reload([app / "db.py"]) == 2
    # The clone saw an empty module, then the new code ran and saw what clone put there.
    assert events[0] == ("clone", "app.db", [])
    assert events[1] == ("exec", True, "cloned")
    assert ("open", "app.db") not in events
    assert r.current.modules["app.db"].pool is old_pool
    assert r.current.target({}, None) == 2


def test_cloned_state_keeps_its_identity_across_20_reloads(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    r = engines()
    r.load()
    pool = r.current.modules["app.db"].pool
    for i in range(20):
        write("app/db.py", DB_WITH_HOOKS.format(value=i + 10))
        r.reload([app / "db.py"])
        assert r.current.modules["app.db"].pool is pool
        assert r.current.target({}, None) == i + 10
    assert r.current.number == 21
    assert r.wait_idle(5)
    assert not [e for e in events if e[0] == "purge"]


def test_module_without_clone_hook_is_purged_once_replaced(
    project: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    write("app/__init__.py", "")
    write("app/wsgi.py", """
        import events
        res = object()
        def __mp_purge__():
            events.log.append(("purge", id(res)))
        def app(environ, start_response):
            return id(res)
    """)
    r = engines()
    first = r.load().target({}, None)
    r.reload([project / "app" / "wsgi.py"])
    assert r.wait_idle(5)
    assert events == [("purge", first)]


def test_failed_clone_purges_old_instance_only_after_its_generation_drains(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write("app/db.py", DB_WITH_HOOKS.format(value=1).replace(
        "    new.pool = pool", "    raise RuntimeError('clone broke')"))
    r = engines()
    gen1 = r.load()
    old_pool = gen1.modules["app.db"].pool
    assert gen1.enter()  # a request in flight on generation 1
    events.clear()
    write("app/db.py", DB_WITH_HOOKS.format(value=2))
    with caplog.at_level(logging.ERROR, logger="hotmod"):
        assert r.reload([app / "db.py"]) == 2
    assert "clone broke" in caplog.text
    # A fresh module was loaded without cloning: it opened its own pool.
    assert ("open", "app.db") in events
    new_pool = r.current.modules["app.db"].pool
    assert new_pool is not old_pool
    assert r.wait_idle(5)
    assert ("purge", id(old_pool)) not in events  # the request still uses it
    assert gen1.state == "draining"
    gen1.exit()
    assert r.wait_idle(5)
    assert events.count(("purge", id(old_pool))) == 1
    assert gen1.state == "retired"
    assert r.stats()["clone_errors"] == 1


def test_successful_clone_never_purges(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    r = engines()
    r.load()
    for v in (2, 3):
        write("app/db.py", DB_WITH_HOOKS.format(value=v))
        r.reload([app / "db.py"])
    assert r.wait_idle(5)
    assert [e for e in events if e[0] == "purge"] == []
    assert r.stats()["purges"] == 0


@pytest.mark.parametrize(
    ("broken", "kind"),
    [
        ("VALUE = (\n", "SyntaxError"),
        ("VALUE = 1\nraise ValueError('boom at import')\n", "ValueError"),
        ("from app.wsgi import no_such_name\n", "ImportError"),
        ("import sys\nsys.exit(3)\n", "SystemExit"),
    ],
)
def test_broken_edit_keeps_last_good_generation_and_sys_modules(
    app: Path, write: Write, engines: Callable[..., Reloader], broken: str, kind: str
) -> None:
    r = engines()
    gen1 = r.load()
    before = dict(sys.modules)
    path = write("app/db.py", broken)
    with pytest.raises(ReloadError) as info:
        r.reload([path])
    failure = info.value.failure
    assert failure.type == kind
    assert failure.module == "app.db"
    assert failure.file == str(path)
    assert failure.line is not None and failure.line >= 1
    assert r.current is gen1 and gen1.state == "current"
    assert {k: v for k, v in sys.modules.items() if k.startswith("app")} == {
        k: v for k, v in before.items() if k.startswith("app")
    }
    assert r.last_error == failure
    # A failed plan uses no generation number.
    write("app/db.py", DB_WITH_HOOKS.format(value=5))
    assert r.reload([path]) == 2
    assert r.last_error is None


def test_failed_plan_purges_fresh_instances_that_opened_resources(
    project: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    write("app/__init__.py", "")
    write("app/res.py", """
        import events
        token = object()
        events.log.append(("open", id(token)))
        def __mp_purge__():
            events.log.append(("purge", id(token)))
    """)
    write("app/wsgi.py", "from app import res\napp = lambda e, s: res.token\n")
    r = engines()
    r.load()
    write("app/wsgi.py", "from app import res\nraise RuntimeError('after res loaded')\n")
    write("app/res.py", (project / "app/res.py").read_text() + "\n# edited\n")
    with pytest.raises(ReloadError):
        r.reload([project / "app/res.py", project / "app/wsgi.py"])
    opened = [e[1] for e in events if e[0] == "open"]
    purged = [e[1] for e in events if e[0] == "purge"]
    assert len(opened) == 2
    assert purged == [opened[1]]  # the thrown-away instance, not the current one


def test_edited_leaf_reloads_its_importers_and_from_imports_see_new_values(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    assert r.current.target({}, None) == 1
    write("app/db.py", DB_WITH_HOOKS.format(value=7))
    r.reload([app / "db.py"])
    assert r.current.target({}, None) == 7
    assert r.stats()["history"][-1]["modules"] == ["app.db", "app.wsgi"]
    assert r.stats()["history"][-1]["importers"] == 1


def test_unchanged_modules_keep_their_identity(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/util.py", "X = 1\n")
    write("app/views.py", "def view():\n    return 1\n")
    write("app/wsgi.py", "from app import util, views\napp = lambda e, s: views.view()\n")
    r = engines()
    gen1 = r.load()
    write("app/views.py", "def view():\n    return 2\n")
    r.reload([project / "app/views.py"])
    gen2 = r.current
    assert gen2.modules["app.util"] is gen1.modules["app.util"]
    assert gen2.modules["app"] is gen1.modules["app"]
    assert gen2.modules["app.views"] is not gen1.modules["app.views"]
    assert sys.modules["app.views"] is gen2.modules["app.views"]
    assert sys.modules["app"].views is gen2.modules["app.views"]
    assert gen2.target({}, None) == 2


def test_package_init_and_relative_imports_resolve_in_the_new_generation(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "NAME = 'pkg-1'\n")
    write("app/sub/__init__.py", "")
    write("app/sub/leaf.py", "VALUE = 1\n")
    write("app/sub/mid.py", """
        from . import leaf
        from .leaf import VALUE
        from .. import NAME
        import app.sub.leaf as aliased
        def get():
            from .leaf import VALUE as late
            return (leaf.VALUE, VALUE, NAME, aliased.VALUE, late)
    """)
    write("app/wsgi.py", "from .sub.mid import get\napp = lambda e, s: get()\n")
    r = engines()
    gen1 = r.load()
    assert gen1.target({}, None) == (1, 1, "pkg-1", 1, 1)
    write("app/sub/leaf.py", "VALUE = 2\n")
    r.reload([project / "app/sub/leaf.py"])
    assert r.current.target({}, None) == (2, 2, "pkg-1", 2, 2)
    # Old code resolves its function-level relative import to its own generation.
    assert gen1.target({}, None) == (1, 1, "pkg-1", 1, 1)
    assert sys.modules["app"].sub.leaf is r.current.modules["app.sub.leaf"]
    write("app/__init__.py", "NAME = 'pkg-2'\n")
    r.reload([project / "app/__init__.py"])
    assert r.current.target({}, None) == (2, 2, "pkg-2", 2, 2)
    # The re-executed package still has its (shared) subpackage as an attribute.
    assert r.current.modules["app"].sub is r.current.modules["app.sub"]


def test_import_cycle_reloads_as_one_unit(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/a.py", "from app import b\nA = 1\ndef get():\n    return (A, b.B)\n")
    write("app/b.py", "from app import a\nB = 1\ndef get():\n    return (a.A, B)\n")
    write("app/wsgi.py", "from app import a, b\napp = lambda e, s: (a.get(), b.get())\n")
    r = engines()
    r.load()
    assert r.current.target({}, None) == ((1, 1), (1, 1))
    write("app/b.py", "from app import a\nB = 2\ndef get():\n    return (a.A, B)\n")
    r.reload([project / "app/b.py"])
    assert r.current.target({}, None) == ((1, 2), (1, 2))
    assert set(r.stats()["history"][-1]["modules"]) == {"app.a", "app.b", "app.wsgi"}
    assert r.graph()["app.a"] == ["app.b"] and r.graph()["app.b"] == ["app.a"]


def test_deleted_module_is_purged_and_its_importer_reloaded(
    project: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    write("app/__init__.py", "")
    write("app/old.py", """
        import events
        def __mp_purge__():
            events.log.append("purged old")
    """)
    write("app/wsgi.py", "from app import old\napp = lambda e, s: 'uses old'\n")
    r = engines()
    r.load()
    write("app/wsgi.py", "app = lambda e, s: 'no old'\n")
    (project / "app/old.py").unlink()
    r.reload()  # finds both changes itself
    assert r.current.target({}, None) == "no old"
    assert "app.old" not in r.current.modules
    assert "app.old" not in sys.modules
    assert r.wait_idle(5)
    assert events == ["purged old"]


def test_deleting_a_module_still_imported_fails_and_keeps_serving(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/old.py", "X = 1\n")
    write("app/wsgi.py", "from app import old\napp = lambda e, s: old.X\n")
    r = engines()
    r.load()
    (project / "app/old.py").unlink()
    with pytest.raises(ReloadError):
        r.reload()
    assert r.current.number == 1 and r.current.target({}, None) == 1


def test_files_outside_the_roots_are_never_reloaded(
    tmp_path: Path, project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shared.py").write_text("X = 1\n")
    sys.path.insert(0, str(outside))
    write("app/__init__.py", "")
    (project / "app" / "linked.py").symlink_to(outside / "shared.py")
    write("app/wsgi.py", "import shared\nfrom app import linked\napp = lambda e, s: (shared.X, linked.X)\n")
    r = engines(roots=[project / "app"])
    gen = r.load()
    assert set(gen.modules) == {"app", "app.wsgi"}
    (outside / "shared.py").write_text("X = 2\n")
    assert r.reload([outside / "shared.py", project / "app" / "linked.py"]) == 1
    assert r.reload() == 1


def test_roots_inside_site_packages_or_stdlib_are_refused(project: Path) -> None:
    import sysconfig

    with pytest.raises(ValueError, match="site-packages"):
        Reloader("app.wsgi:app", roots=[sysconfig.get_paths()["purelib"]])
    with pytest.raises(ValueError, match="standard"):
        Reloader("app.wsgi:app", roots=[os.path.dirname(os.__file__)])


def test_bad_targets_raise_target_error_naming_the_problem(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    with pytest.raises(TargetError, match="form"):
        engines("app.wsgi")
    with pytest.raises(TargetError, match="nosuch"):
        engines("nosuch.mod:app")
    with pytest.raises(TargetError, match="no attribute 'missing'"):
        engines("app.wsgi:missing").load()
    write("app/notcallable.py", "app = 3\n")
    with pytest.raises(TargetError, match="not callable"):
        engines("app.notcallable:app").load()
    with pytest.raises(TargetError, match=r"app\.absent"):
        engines("app.absent:app").load()


def test_factory_target_is_called_and_its_imports_are_tracked(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", """
        def create_app():
            from app import views
            return lambda e, s: views.TEXT
    """)
    write("app/views.py", "TEXT = 'one'\n")
    r = engines("app:create_app()")
    assert r.load().target({}, None) == "one"
    write("app/views.py", "TEXT = 'two'\n")
    r.reload([project / "app/views.py"])
    assert r.current.target({}, None) == "two"
    assert "app.views" in r.graph()["app"]


def test_factory_arguments_reach_every_generation_as_fresh_copies(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", """
        from app import views

        def main(global_config, **settings):
            seen = (global_config.pop("here"), settings.pop("greeting"), views.TEXT)
            return lambda e, s: seen
    """)
    write("app/views.py", "TEXT = 'one'\n")
    r = engines(
        "app:main()", factory_args=({"here": "/srv"},), factory_kwargs={"greeting": "hello"}
    )
    assert r.load().target({}, None) == ("/srv", "hello", "one")
    write("app/views.py", "TEXT = 'two'\n")
    r.reload([project / "app/views.py"])
    # The first call popped from its dicts: the second generation still gets them whole.
    assert r.current.target({}, None) == ("/srv", "hello", "two")
    with pytest.raises(ValueError, match="factory target"):
        engines("app:main", factory_kwargs={"greeting": "hello"})


def test_a_re_executed_package_has_its_shared_submodules_as_attributes_before_the_swap(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    """Pyramid's config.include('.routes') resolves the name with getattr on the
    package, from the factory, before the swap binds package attributes."""
    write("app/__init__.py", """
        import importlib
        import sys

        def main():
            importlib.import_module("app.routes")
            importlib.import_module("app.views")
            package = sys.modules["app"]
            found = (package.routes.ROUTE, package.views.TEXT)
            return lambda e, s: found
    """)
    write("app/routes.py", "ROUTE = '/'\n")
    write("app/views.py", "TEXT = 'one'\n")
    r = engines("app:main()")
    assert r.load().target({}, None) == ("/", "one")
    write("app/views.py", "TEXT = 'two'\n")
    r.reload([project / "app/views.py"])
    assert r.current.target({}, None) == ("/", "two")


def test_reload_with_nothing_changed_returns_the_current_number(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    assert r.reload() == 1
    (app / "db.py").touch()
    assert r.reload() == 1  # a touch is no change: the content hash is the same
    assert r.reload([app / "db.py"]) == 2  # explicit paths reload regardless


def test_purge_hook_taking_the_module_gets_the_instance(
    project: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    write("app/__init__.py", "")
    write("app/wsgi.py", """
        import events
        def __mp_purge__(module):
            events.log.append(module.__name__)
        app = lambda e, s: 1
    """)
    r = engines()
    r.load()
    r.reload([project / "app/wsgi.py"])
    assert r.wait_idle(5)
    assert events == ["app.wsgi"]


def test_raising_purge_hook_is_logged_and_never_propagates(
    project: Path, write: Write, engines: Callable[..., Reloader], caplog: pytest.LogCaptureFixture
) -> None:
    write("app/__init__.py", "")
    write("app/wsgi.py", "def __mp_purge__():\n    raise OSError('purge broke')\napp = lambda e, s: 1\n")
    r = engines()
    r.load()
    with caplog.at_level(logging.ERROR, logger="hotmod"):
        r.reload([project / "app/wsgi.py"])
        assert r.wait_idle(5)
    assert "purge broke" in caplog.text
    assert r.stats()["purge_errors"] == 1


def test_close_purges_importers_before_what_they_import_and_is_idempotent(
    project: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    write("app/__init__.py", "")
    for name, imports in (("low", ""), ("mid", "from app import low\n"), ("wsgi", "from app import mid\n")):
        write(f"app/{name}.py", imports + f"""
import events
def __mp_purge__():
    events.log.append({name!r})
app = lambda e, s: 1
""")
    r = engines("app.wsgi:app")
    r.load()
    r.close()
    r.close()
    assert events == ["wsgi", "mid", "low"]
    with pytest.raises(HotmodError, match="closed"):
        r.reload()


def test_old_generation_code_imports_its_own_instances_at_request_time(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/helpers.py", "VERSION = 1\n")
    write("app/wsgi.py", """
        from app import helpers as _loaded_at_import
        def app(environ, start_response):
            from app.helpers import VERSION
            import app.helpers
            return (VERSION, app.helpers.VERSION)
    """)
    r = engines()
    gen1 = r.load()
    assert gen1.enter()
    write("app/helpers.py", "VERSION = 2\n")
    r.reload([project / "app/helpers.py"])
    assert r.current.target({}, None) == (2, 2)
    assert gen1.target({}, None) == (1, 1)
    gen1.exit()


def test_an_old_generation_in_flight_never_sees_a_half_built_module(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    """While a reload executes a module (blocked here on an event), a request on the
    current generation importing that module at request time gets its own instance."""
    gate = threading.Event()
    entered = threading.Event()
    write("gate.py", "")
    import gate as gate_mod

    gate_mod.gate = gate  # type: ignore[attr-defined]
    gate_mod.entered = entered  # type: ignore[attr-defined]
    write("app/__init__.py", "")
    write("app/helpers.py", "VERSION = 1\n")
    write("app/wsgi.py", (
        "from app import helpers as h\n"
        "def app(e, s):\n    from app import helpers\n    return helpers.VERSION\n"
    ))
    r = engines(roots=[project / "app"])
    gen1 = r.load()
    write("app/helpers.py", "import gate\ngate.entered.set()\ngate.gate.wait(10)\nVERSION = 2\n")
    t = threading.Thread(target=r.reload, args=([project / "app/helpers.py"],))
    t.start()
    try:
        assert entered.wait(10)
        assert sys.modules["app.helpers"] is not gen1.modules["app.helpers"]  # staged
        assert gen1.target({}, None) == 1
    finally:
        gate.set()
        t.join(10)
    assert r.current.target({}, None) == 2


def test_extra_files_reload_the_modules_that_read_them(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/settings.json", '{"greeting": "hello"}')
    write("app/config.py", """
        import json, os
        with open(os.path.join(os.path.dirname(__file__), "settings.json")) as f:
            SETTINGS = json.load(f)
    """)
    write("app/wsgi.py", "from app.config import SETTINGS\napp = lambda e, s: SETTINGS['greeting']\n")
    r = engines(extra=["*.json"])
    r.load()
    write("app/settings.json", '{"greeting": "bonjour"}')
    r.reload([project / "app/settings.json"])
    assert r.current.target({}, None) == "bonjour"
    assert r.stats()["history"][-1]["modules"] == ["app.config", "app.wsgi"]


def test_module_first_imported_at_request_time_is_adopted_and_reloadable(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/late.py", "X = 1\n")
    write("app/wsgi.py", "def app(e, s):\n    from app import late\n    return late.X\n")
    r = engines()
    r.load()
    assert r.current.target({}, None) == 1
    write("app/late.py", "X = 2\n")
    assert r.reload([project / "app/late.py"]) == 2
    assert r.current.target({}, None) == 2


def test_an_empty_file_is_taken_as_a_write_in_progress_until_seen_twice(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    (app / "db.py").write_text("")
    assert r.reload() == 1  # probably between truncate and write: not loaded
    assert r.reload() == 2  # seen again in the same state: it really is empty
    assert "VALUE" in vars(r.current.modules["app.db"])  # handed over by the clone hook


def test_two_engines_on_one_app_do_not_break_each_other(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object]
) -> None:
    a, b = engines(), engines()
    a.load()
    b.load()
    pool_b = b.current.modules["app.db"].pool
    assert pool_b is not a.current.modules["app.db"].pool
    a.close()
    assert ("purge", id(pool_b)) not in events
    assert b.current.target({}, None) == 1
    write("app/db.py", DB_WITH_HOOKS.format(value=3))
    assert b.reload([app / "db.py"]) == 2
    assert b.current.target({}, None) == 3
    assert sys.modules["app.db"] is b.current.modules["app.db"]


WSGI_N = "from app import mid, leaf\nN = {n}\napp = lambda e, s: (leaf.N, mid.LEAF, mid.N, N)\n"


#: `make test` runs the long proofs at a quarter of their length; `make stress` whole.
RELOADS = [50, pytest.param(200, marks=pytest.mark.slow)]


@pytest.mark.parametrize("reloads", RELOADS)
def test_eight_threads_see_whole_generations_while_reloads_run(
    project: Path, write: Write, engines: Callable[..., Reloader], reloads: int
) -> None:
    """Each generation's modules all carry its edit number; a request reads them all
    and must see one number only. Every superseded generation ends retired."""
    write("app/__init__.py", "")
    write("app/leaf.py", "N = 0\n")
    write("app/mid.py", "from app.leaf import N as LEAF\nN = 0\n")
    write("app/wsgi.py", WSGI_N.format(n=0))
    r = engines()
    r.load()
    stop = threading.Event()
    errors: list[str] = []
    seen = {"requests": 0, "newest": 0}
    gens: list[object] = []

    def client() -> None:
        while not stop.is_set():
            gen = r.acquire()
            try:
                result = gen.target({}, None)
                if len(set(result)) != 1:
                    errors.append(f"mixed generation: {result}")
                seen["requests"] += 1
                seen["newest"] = max(seen["newest"], result[0])
            finally:
                gen.exit()

    threads = [threading.Thread(target=client) for _ in range(8)]
    # Eight threads spinning in pure Python starve the reloading thread of the GIL
    # (real request threads block on I/O); a short switch interval keeps the test
    # brief without easing the contention it is after.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    for t in threads:
        t.start()
    try:
        for n in range(1, reloads + 1):
            write("app/leaf.py", f"N = {n}\n")
            write("app/mid.py", f"from app.leaf import N as LEAF\nN = {n}\n")
            write("app/wsgi.py", WSGI_N.format(n=n))
            r.reload([project / "app/leaf.py", project / "app/mid.py", project / "app/wsgi.py"])
            gens.append(r.current)
        wait_until(lambda: seen["newest"] == reloads, timeout=10, what="a request on the last one")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        sys.setswitchinterval(interval)
    assert not errors
    assert seen["requests"] > reloads
    assert r.current.number == reloads + 1
    assert r.wait_idle(10)
    assert all(g.state == "retired" for g in gens[:-1])  # type: ignore[attr-defined]
    assert r.stats()["draining"] == []
    assert r.stats()["retired"] == reloads


@pytest.mark.parametrize("reloads", RELOADS)
def test_no_generation_leaks_after_reloads(
    app: Path, write: Write, engines: Callable[..., Reloader], reloads: int
) -> None:
    import weakref

    r = engines()
    r.load()
    refs = []
    for i in range(reloads):
        refs.append(weakref.ref(r.current.modules["app.wsgi"]))
        write("app/db.py", DB_WITH_HOOKS.format(value=i))
        r.reload([app / "db.py"])
    assert r.wait_idle(10)
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []
    assert r.stats()["leaked"] == []


def test_a_clone_hook_that_carries_old_code_is_reported_as_a_leak(
    project: Path, write: Write, engines: Callable[..., Reloader], caplog: pytest.LogCaptureFixture
) -> None:
    write("app/__init__.py", "")
    write("app/wsgi.py", """
        class Cache:
            def get(self, key):
                return key
        if "cache" not in globals():
            cache = Cache()
        def __mp_clone__(new):
            new.cache = cache  # an object whose class lives in the old instance
        app = lambda e, s: 1
    """)
    r = engines()
    r.load()
    with caplog.at_level(logging.WARNING, logger="hotmod"):
        r.reload([project / "app/wsgi.py"])
        assert r.wait_idle(5)
    leaked = r.stats()["leaked"]
    assert [(x["generation"], x["module"]) for x in leaked] == [(1, "app.wsgi")]
    assert "Cache" in leaked[0]["referrers"] or "cache" in leaked[0]["referrers"]
    assert "leak" in caplog.text


def test_acquire_never_enters_a_retired_generation(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    gen1 = r.load()
    write("app/db.py", DB_WITH_HOOKS.format(value=2))
    r.reload([app / "db.py"])
    assert gen1.state == "retired"
    assert gen1.enter() is False
    gen = r.acquire()
    assert gen.number == 2
    gen.exit()


def test_subscribers_get_reload_and_failure_events(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    got: list[object] = []
    unsubscribe = r.subscribe(lambda e: got.append((e.kind, e.generation)))
    write("app/db.py", DB_WITH_HOOKS.format(value=2))
    r.reload([app / "db.py"])
    write("app/db.py", "x = (\n")
    with pytest.raises(ReloadError):
        r.reload([app / "db.py"])
    assert r.wait_idle(5)
    assert ("reloaded", 2) in got and ("failed", 2) in got and ("retired", 1) in got
    unsubscribe()
    n = len(got)
    write("app/db.py", DB_WITH_HOOKS.format(value=3))
    r.reload([app / "db.py"])
    assert len(got) == n


def test_freeze_keeps_changes_pending_until_thaw(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    r.freeze()
    write("app/db.py", DB_WITH_HOOKS.format(value=9))
    assert r.reload() == 1
    assert r.stats()["pending"] == [str((app / "db.py").resolve())]
    assert r.thaw() == 2
    assert r.current.target({}, None) == 9
    assert r.stats()["pending"] == []


def test_drain_timeout_retires_a_generation_that_never_drains(
    app: Path, write: Write, engines: Callable[..., Reloader], events: list[object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write("app/db.py", DB_WITH_HOOKS.format(value=1).replace("def __mp_clone__", "def _no_clone"))
    r = engines(drain_warning=0.05, drain_timeout=0.2)
    gen1 = r.load()
    assert gen1.enter()  # a stream that never ends
    write("app/db.py", DB_WITH_HOOKS.format(value=2))
    with caplog.at_level(logging.WARNING, logger="hotmod"):
        r.reload([app / "db.py"])
        wait_until(lambda: gen1.state == "retired", timeout=10, what="the drain timeout")
        assert r.wait_idle(5)
    assert "draining for" in caplog.text and "drain_timeout" in caplog.text
    assert [e for e in events if e[0] == "purge"]
    gen1.exit()  # the stream finally ends: nothing breaks, nothing runs twice
    assert r.wait_idle(5)
    assert len([e for e in events if e[0] == "purge"]) == 1


def test_undoing_a_failed_edit_clears_the_error_without_a_new_generation(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    good = (app / "db.py").read_text()
    write("app/db.py", "x = (\n")
    with pytest.raises(ReloadError):
        r.reload()
    assert r.last_error is not None
    got: list[str] = []
    r.subscribe(lambda e: got.append(e.kind))
    write("app/db.py", good)
    assert r.reload() == 1
    assert r.last_error is None and got == ["recovered"]


CHECKED_APP = """
from app import routes, views
if routes.ROUTES != views.VIEWS:
    raise LookupError(f"no view for {set(views.VIEWS) ^ set(routes.ROUTES)}")

def app(environ, start_response):
    return routes.ROUTES
"""


def test_a_fix_in_another_file_also_loads_the_failed_edit(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    # A route removed while its view stays fails in the app, which checks both; the
    # fix lands in views.py, which routes.py does not import: the next generation must
    # hold both edits, not the fix over the old routes.py.
    r = engines()
    r.load()
    write("app/routes.py", "ROUTES = ['home', 'about']\n")
    write("app/views.py", "VIEWS = ['home', 'about']\n")
    write("app/wsgi.py", CHECKED_APP)
    assert r.reload([app / "wsgi.py"]) == 2
    routes = write("app/routes.py", "ROUTES = ['home']\n")
    with pytest.raises(ReloadError):
        r.reload([routes])
    write("app/views.py", "VIEWS = ['home']\n")
    assert r.reload([app / "views.py"]) == 3
    assert r.last_error is None
    assert r.current.target({}, None) == ["home"]


def test_keeping_a_reload_error_keeps_no_old_generation_alive(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    import weakref

    r = engines()
    gen1 = r.load()
    first_db = weakref.ref(gen1.modules["app.db"])
    write("app/db.py", "x = (\n")
    with pytest.raises(ReloadError) as kept:
        r.reload()
    write("app/db.py", DB_WITH_HOOKS.format(value=2).replace("def __mp_clone__", "def _off"))
    r.reload()
    del gen1
    assert r.wait_idle(5)
    gc.collect()
    assert kept.value.failure.type == "SyntaxError"
    assert first_db() is None
    assert r.stats()["leaked"] == []


def test_an_absolute_extra_pattern_outside_the_roots_reloads_its_readers(
    tmp_path: Path, project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    config = tmp_path / "etc" / "app.toml"
    config.parent.mkdir()
    config.write_text('name = "one"\n')
    write("app/__init__.py", "")
    write("app/wsgi.py", f"""
        import tomllib
        with open({str(config)!r}, "rb") as f:
            NAME = tomllib.load(f)["name"]
        app = lambda e, s: NAME
    """)
    r = engines(extra=[str(tmp_path / "etc" / "*.toml")])
    r.load()
    config.write_text('name = "two"\n')
    assert r.reload([config]) == 2
    assert r.current.target({}, None) == "two"
    unrelated = tmp_path / "etc" / "other.txt"
    unrelated.write_text("x")
    assert r.reload([unrelated]) == 2


def test_modules_loaded_with_importlib_while_loading_become_reloadable(
    project: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", "")
    write("app/plugins/__init__.py", "")
    write("app/plugins/one.py", "NAME = 'one'\n")
    write("app/wsgi.py", """
        import importlib
        PLUGIN = importlib.import_module("app.plugins.one")
        def app(environ, start_response):
            return importlib.import_module("app.plugins.one").NAME
    """)
    r = engines()
    r.load()
    assert "app.plugins.one" in r.current.modules
    write("app/plugins/one.py", "NAME = 'uno'\n")
    assert r.reload([project / "app/plugins/one.py"]) == 2
    assert r.current.target({}, None) == "uno"


def test_starting_the_watcher_catches_up_with_edits_made_before_it(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines()
    r.load()
    write("app/db.py", DB_WITH_HOOKS.format(value=42))  # no watcher yet: no event
    r.watch()
    try:
        wait_until(lambda: r.current.number == 2, timeout=10, what="the catch-up reload")
        assert r.current.target({}, None) == 42
    finally:
        r.unwatch()


def test_an_engine_loaded_inside_another_engines_load_hands_the_outer_load_back(
    project: Path, tmp_path: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    """A module that builds its own engine at import time (a Publisher made at module
    level) must not stop the outer load from recording what the rest of it reads."""
    inner_root = tmp_path / "inner"
    inner_root.mkdir()
    (inner_root / "hm_inner_app.py").write_text("app = lambda e, s: 'inner'\n")
    sys.path.insert(0, str(inner_root))
    write("app/__init__.py", "")
    write("app/settings.json", '"one"')
    write("app/config.py", f"""
        import json, os
        from hotmod import Reloader
        inner = Reloader("hm_inner_app:app", roots=[{str(inner_root)!r}], leak_check_delay=0)
        inner.load()
        with open(os.path.join(os.path.dirname(__file__), "settings.json")) as f:
            SETTING = json.load(f)
        def __mp_purge__():
            inner.close()
    """)
    write("app/wsgi.py", "from app import config\napp = lambda e, s: config.SETTING\n")
    r = engines(extra=["*.json"])
    r.load()
    try:
        write("app/settings.json", '"two"')
        r.reload([project / "app/settings.json"])
        # The reader of the file is app.config, loaded after the inner engine ran.
        assert r.stats()["history"][-1]["modules"] == ["app.config", "app.wsgi"]
        assert r.current.target({}, None) == "two"
    finally:
        r.current.modules["app.config"].inner.close()
