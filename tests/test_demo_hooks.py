"""The demo's own hooks (demo_app/db.py), tested the way docs/hooks.md tells an author
to test theirs: with the ``hot_reload`` fixture, which reloads through the real
engine. Each test runs a private copy of the demo on SQLite (its database file is
``<tmp>/proj/var/demo.sqlite3``), so the repository's ``var/`` is never touched."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg_pool  # noqa: F401
import pytest
from support import demo_copy

from hotmod import ReloadError
from hotmod.reloader._pytest_plugin import HotReloadFixture

# demo_app/db.py imports psycopg_pool: imported above, or the ``project`` fixture's
# ``clean_modules`` would drop it after every test and each test would import it again.


@pytest.fixture
def demo(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of ``demo_app/`` first on ``sys.path``, on SQLite; the folder of the copy."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with demo_copy(project):
        yield project / "demo_app"


def is_closed(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("select 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_reload_hands_the_connection_its_lock_and_its_age_to_the_new_instance(
    demo: Path, hot_reload: HotReloadFixture
) -> None:
    old = hot_reload.load("demo_app.db")
    note = old.add_note("written before the reload", "ada")
    new = hot_reload(old)
    assert new is not old
    assert new.pool is old.pool and new.lock is old.lock
    assert new.created_at == old.created_at
    assert new.list_notes() == [note]
    assert hot_reload.purged == []


def test_shutdown_closes_the_connection_once_through_the_newest_instance(
    demo: Path, hot_reload: HotReloadFixture
) -> None:
    old = hot_reload.load("demo_app.db")
    new = hot_reload(old)
    hot_reload.close()
    assert hot_reload.purged == [new]
    assert is_closed(old.pool)


def test_when_the_clone_hook_fails_the_old_connection_is_closed_once_its_generation_retires(
    demo: Path,
    hot_reload: HotReloadFixture,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = hot_reload.load("demo_app.db")

    def clone_that_fails(module: object) -> None:
        raise RuntimeError("the clone hook broke")

    monkeypatch.setattr(old, "__mp_clone__", clone_that_fails)
    new = hot_reload(old)
    assert new.pool is not old.pool
    assert hot_reload.purged == [old]
    assert is_closed(old.pool) and not is_closed(new.pool)
    assert "the clone hook broke" in caplog.text


def test_an_edit_that_fails_to_import_keeps_the_old_instance_current_and_its_connection_open(
    demo: Path, hot_reload: HotReloadFixture
) -> None:
    old = hot_reload.load("demo_app.db")
    path = demo / "db.py"
    source = path.read_text()
    path.write_text(source.replace("MAX_NOTE_LENGTH = 500", "MAX_NOTE_LENGTH = 500 +"))
    with pytest.raises(ReloadError) as failed:
        hot_reload(old)
    assert failed.value.failure.type == "SyntaxError"
    assert hot_reload.purged == []
    assert sys.modules["demo_app.db"] is old
    old.add_note("the old code still serves")
    path.write_text(source.replace("MAX_NOTE_LENGTH = 500", "MAX_NOTE_LENGTH = 280"))
    new = hot_reload(old)
    assert (new.MAX_NOTE_LENGTH, old.MAX_NOTE_LENGTH) == (280, 500)
    assert new.pool is old.pool
    assert [n["body"] for n in new.list_notes()] == ["the old code still serves"]


def test_reloading_the_database_module_re_executes_the_views_against_the_same_connection(
    demo: Path, hot_reload: HotReloadFixture
) -> None:
    views = hot_reload.load("demo_app.views")
    old_db = views.db
    new_db = hot_reload(old_db)
    new_views = hot_reload.reloader.current.modules["demo_app.views"]
    assert new_views is not views and new_views.db is new_db
    assert new_db.pool is old_db.pool
    assert hot_reload.purged == []
