"""The ``hot_reload`` fixture: available to an outside project through the ``pytest11``
entry point, harmless when loaded twice, cheap to import; and what it does, on the
example shop of tests/fixtures/pytest_plugin/."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
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
    """A folder with the example shop and its author's hook tests, nothing else."""
    shutil.copytree(EXAMPLE / "shop", pytester.path / "shop")
    shutil.copy(EXAMPLE / "shop_hook_tests.py", pytester.path / "test_shop_hooks.py")
    return pytester


def test_an_outside_project_gets_the_fixture_from_the_installed_entry_point(
    outside_project: pytest.Pytester,
) -> None:
    # A process of its own: nothing of this session's plugins, only what is installed.
    result = outside_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


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
    outside_project.runpytest_inprocess(*args).assert_outcomes(passed=6)


def test_the_plugin_can_be_turned_off_and_named_when_autoloading_is_off(
    outside_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = outside_project.runpytest_inprocess("-p", "no:cacheprovider", "-p", f"no:{PLUGIN}")
    # Five tests need the fixture; the sixth fails since the other five loaded nothing.
    off.assert_outcomes(errors=5, failed=1)
    off.stdout.fnmatch_lines(["*fixture 'hot_reload' not found*"])
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    named = outside_project.runpytest_inprocess("-p", "no:cacheprovider", "-p", PLUGIN)
    named.assert_outcomes(passed=6)


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
    hot_reload.close()
    assert sys.modules["shop.db"] is imported
    assert sys.modules["shop"].db is imported
    assert hot_reload.purged == [new]
    assert is_open(imported.connection)
    with pytest.raises(HotmodError, match="has loaded nothing yet"):
        hot_reload.reloader  # noqa: B018


def test_a_module_that_cannot_be_loaded_leaves_no_engine_behind(
    shop: Path, hot_reload: HotReloadFixture
) -> None:
    with pytest.raises(HotmodError):
        hot_reload("shop.missing")
    assert "shop.missing" not in sys.modules
    with pytest.raises(TypeError, match="a module or its dotted name"):
        hot_reload(42)  # type: ignore[arg-type]
    assert hot_reload("shop.db").__name__ == "shop.db"
