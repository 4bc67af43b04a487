"""The ``hot_reload`` fixture: available to an outside project through the ``pytest11``
entry point, harmless when loaded twice, cheap to import; and what it does, on the
example shop of tests/fixtures/pytest_plugin/."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

from hotmod import ReloadError
from hotmod.reloader import HotmodError
from hotmod.reloader._pytest_plugin import HotReloadFixture

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parent / "fixtures" / "pytest_plugin"
PLUGIN = "hotmod.reloader._pytest_plugin"


@pytest.fixture
def outside_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A folder with the example shop and kit and their author's hook tests, nothing else."""
    shutil.copytree(EXAMPLE / "shop", pytester.path / "shop")
    shutil.copytree(EXAMPLE / "kitpkg", pytester.path / "kitpkg")
    shutil.copy(EXAMPLE / "shop_hook_tests.py", pytester.path / "test_shop_hooks.py")
    return pytester


def test_an_outside_project_gets_the_fixture_from_the_installed_entry_point(
    outside_project: pytest.Pytester,
) -> None:
    # A process of its own: nothing of this session's plugins, only what is installed.
    result = outside_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


@pytest.mark.parametrize(
    "how",
    ["a conftest listing it in pytest_plugins", "-p with its module name"],
)
def test_loading_the_plugin_a_second_time_is_harmless(outside_project: pytest.Pytester, how: str) -> None:
    args = ["-p", "no:cacheprovider"]
    if how.startswith("a conftest"):
        outside_project.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
    else:
        args += ["-p", PLUGIN]
    outside_project.runpytest_inprocess(*args).assert_outcomes(passed=7)


def test_the_plugin_can_be_turned_off_and_named_when_autoloading_is_off(
    outside_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = outside_project.runpytest_inprocess("-p", "no:cacheprovider", "-p", f"no:{PLUGIN}")
    # Six tests need the fixture; the seventh fails since the other six loaded nothing.
    off.assert_outcomes(errors=6, failed=1)
    off.stdout.fnmatch_lines(["*fixture 'hot_reload' not found*"])
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    named = outside_project.runpytest_inprocess("-p", "no:cacheprovider", "-p", PLUGIN)
    named.assert_outcomes(passed=7)


def test_importing_the_plugin_brings_in_neither_the_database_driver_nor_werkzeug_nor_watchdog() -> None:
    probe = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        f"import {PLUGIN}\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = result.stdout.split()
    assert PLUGIN in imported
    heavy = [m for m in imported if m.split(".")[0] in ("psycopg", "psycopg_pool", "werkzeug", "watchdog")]
    assert heavy == []
    assert "hotmod.middleware._check" not in imported  # the checker loads with its command only


# -- the fixture's behaviour, in this process, on a copy of the example shop ---------


@pytest.fixture
def shop(project: Path) -> Path:
    shutil.copytree(EXAMPLE / "shop", project / "shop")
    return project / "shop"


def is_open(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("select 1")
    except sqlite3.ProgrammingError:
        return False
    return True


def test_a_reload_returns_the_new_instance_after_the_purges_it_made_due(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    old_db, old_cache = hot_reload.load("shop.db"), hot_reload.load("shop.cache")
    new_cache = hot_reload(old_cache)  # no clone hook: the old instance is purged
    assert hot_reload.purged == [old_cache]
    assert not is_open(old_cache.connection) and is_open(new_cache.connection)
    new_db = hot_reload("shop.db")  # by name: the fixture's current instance is reloaded
    assert new_db.connection is old_db.connection
    assert hot_reload.purged == [old_cache]
    assert hot_reload.reloader.current.modules["shop.cache"] is new_cache


def test_a_failed_reload_raises_and_leaves_the_current_instance_current_and_unpurged(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    old = hot_reload.load("shop.db")
    source = (shop / "db.py").read_text()
    (shop / "db.py").write_text(source + "\nraise RuntimeError('half-written edit')\n")
    with pytest.raises(ReloadError, match="half-written edit"):
        hot_reload(old)
    assert hot_reload.purged == []
    assert sys.modules["shop.db"] is old and is_open(old.connection)
    (shop / "db.py").write_text(source)
    assert hot_reload(old).connection is old.connection


def test_a_hook_copied_wholesale_from_the_old_instance_is_recorded_for_the_new_one(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    path = shop / "db.py"
    clone_one = "    module.connection = connection\n"
    path.write_text(path.read_text().replace(clone_one, "    vars(module).update(globals())\n"))
    first = hot_reload.load("shop.db")
    second = hot_reload(first)
    # The next edit drops __mp_purge__: the third instance only has the second's hook,
    # copied over with everything else (and the fixture's record of it).
    path.write_text(path.read_text().replace("def __mp_purge__", "def _former_purge"))
    third = hot_reload(second)
    assert third.connection is first.connection
    assert vars(third)["__mp_purge__"].__name__ == "__mp_purge__"
    hot_reload.close()
    assert hot_reload.purged == [third]
    assert not is_open(first.connection)


def test_closing_restores_sys_modules_and_the_package_attribute(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    import shop.db as imported

    new = hot_reload(imported)
    assert sys.modules["shop.db"] is new and new is not imported
    assert new.connection is imported.connection  # the imported instance's clone hook ran
    hot_reload.close()
    assert sys.modules["shop.db"] is imported
    assert sys.modules["shop"].db is imported
    assert hot_reload.purged == [new]
    # Handed over, then closed by the newest instance's purge at shutdown, as a server would.
    assert not is_open(imported.connection)
    assert vars(imported)["__mp_purge__"].__module__ == "shop.db"  # its own hook back
    assert not hasattr(vars(imported)["__mp_purge__"], "__wrapped__")
    with pytest.raises(HotmodError, match="has loaded nothing yet"):
        hot_reload.reloader  # noqa: B018


# -- the instance the test holds is the one reloaded (issue 20, rule 8) --------------


@pytest.fixture
def kitpkg(project: Path) -> Path:
    shutil.copytree(EXAMPLE / "kitpkg", project / "kitpkg")
    return project / "kitpkg"


def test_the_clone_hook_receives_the_instance_the_test_imported(
    kitpkg: Path, hot_reload: HotReloadFixture
) -> None:
    import kitpkg.store as store

    store.box.append("kept")
    new = hot_reload(store)
    assert new is not store
    assert new.box is store.box and new.box == ["kept"]
    assert sys.modules["kitpkg.store"] is new and sys.modules["kitpkg"].store is new
    assert hot_reload.purged == []  # handed over: nothing to purge
    # What it stands on is the session's, adopted with it, never re-run.
    assert new.labels is store.labels is sys.modules["kitpkg.labels"]
    assert hot_reload.reloader.current.modules["kitpkg"] is sys.modules["kitpkg"]
    assert hot_reload(new).box is store.box
    with pytest.raises(HotmodError, match="already replaced: pass the newest one"):
        hot_reload(store)


def test_an_edit_made_before_the_reload_runs_on_the_adopted_instance(
    kitpkg: Path, hot_reload: HotReloadFixture
) -> None:
    import kitpkg.store as store

    assert store.label() == "store v1"
    path = kitpkg / "store.py"
    path.write_text(path.read_text().replace("VERSION = 1", "VERSION = 2"))
    new = hot_reload("kitpkg.store")  # by name: the instance sys.modules holds
    assert new.label() == "store v2" and store.label() == "store v1"
    assert new.box is store.box


def test_closing_spares_the_sessions_instances_it_never_replaced(
    kitpkg: Path, hot_reload: HotReloadFixture
) -> None:
    import kitpkg.labels as labels
    import kitpkg.shelf as shelf
    import kitpkg.store as store

    store.box.append("kept")
    new = hot_reload(store)
    assert shelf.SHELF is store.box  # an importer of the store: not re-run, not touched
    assert "kitpkg.shelf" not in hot_reload.reloader.current.modules
    own_hook = vars(store)["__mp_purge__"].__wrapped__
    hot_reload.close()
    assert hot_reload.purged == [new]  # the instance it made; labels was only adopted
    assert labels.OPENED == [] and store.box == []  # the box went with the newest instance
    assert not hasattr(vars(labels)["__mp_purge__"], "__wrapped__")  # its own hook back
    assert vars(store)["__mp_purge__"] is own_hook
    assert sys.modules["kitpkg.store"] is store and sys.modules["kitpkg"].store is store
    assert sys.modules["kitpkg.labels"] is labels
    assert not any("hotmod-hot-reload" in entry for entry in sys.path)
    assert not any(name.startswith("_hotmod_hot_reload_anchor") for name in sys.modules)


def test_an_instance_it_cannot_adopt_fails_the_test_saying_why(
    kitpkg: Path, hot_reload: HotReloadFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json.decoder

    import kitpkg.store as store

    refusals = {
        "has no file (a built-in module": sys,
        "not loaded from a .py file": _an_extension_module(),
        "lies outside any root it can use": json.decoder,
    }
    for why, module in refusals.items():
        with pytest.raises(pytest.fail.Exception, match=re.escape(why)):
            hot_reload(module)
    monkeypatch.setitem(sys.modules, "kitpkg.store", types.ModuleType("kitpkg.store"))
    with pytest.raises(pytest.fail.Exception, match=r"not the one sys\.modules holds for kitpkg\.store"):
        hot_reload(store)
    monkeypatch.undo()
    with pytest.raises(HotmodError, match="has loaded nothing yet"):
        hot_reload.reloader  # noqa: B018  (no engine left behind by a refusal)
    hot_reload.load("kitpkg.store")
    with pytest.raises(pytest.fail.Exception, match=r"not the one hot_reload holds for kitpkg\.store"):
        hot_reload(store)  # the session's instance, while the fixture has one of its own


def _an_extension_module() -> types.ModuleType:
    """A compiled module loaded from its own file (which ones are depends on the build)."""
    import select  # noqa: F401  (one candidate among those already loaded)

    for name, module in sorted(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file.endswith((".so", ".pyd")) and getattr(module, "__name__", None) == name:
            return module
    raise AssertionError("no extension module is loaded")


def test_a_module_that_cannot_be_loaded_leaves_no_engine_behind(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    with pytest.raises(HotmodError):
        hot_reload("shop.missing")
    assert "shop.missing" not in sys.modules
    with pytest.raises(TypeError, match="a module or its dotted name"):
        hot_reload(42)  # type: ignore[arg-type]
    assert hot_reload("shop.db").__name__ == "shop.db"
