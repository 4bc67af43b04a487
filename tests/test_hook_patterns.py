"""The patterns of docs/hooks.md, each run through the engine (``hotmod.Reloader``)
from the modules in tests/fixtures/hook_patterns/, copied into a fresh project."""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from support import wait_until

from hotmod import Reloader
from hotmod.middleware._check import check_paths

REPO = Path(__file__).resolve().parent.parent
PATTERNS = REPO / "tests" / "fixtures" / "hook_patterns"
GUIDE = REPO / "docs" / "hooks.md"

Install = Callable[[str], Path]
Make = Callable[..., Reloader]


@pytest.fixture
def install(project: Path) -> Install:
    """Copy one pattern package into the project; return its folder."""

    def install(package: str) -> Path:
        shutil.copytree(PATTERNS / package, project / package)
        return project / package

    return install


@pytest.fixture
def engines() -> Iterator[Make]:
    made: list[Reloader] = []

    def make(target: str, **options: object) -> Reloader:
        engine = Reloader(target, **options)  # type: ignore[arg-type]
        made.append(engine)
        engine.load()
        return engine

    yield make
    for engine in made:
        engine.close()


def reload(engine: Reloader, path: Path) -> None:
    engine.reload([path])


# -- a psycopg pool -------------------------------------------------------------------


@pytest.mark.postgres
def test_a_pool_is_opened_once_crosses_every_reload_and_is_closed_at_shutdown(
    pg_dsn: str, install: Install, engines: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = f"hotmod-pattern-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DATABASE_URL", make_conninfo(pg_dsn, application_name=application))

    def backends() -> int:
        with psycopg.connect(pg_dsn) as conn:
            row = conn.execute(
                "select count(*) from pg_stat_activity where application_name = %s", (application,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    folder = install("pattern_pool")
    engine = engines("pattern_pool.db:server_version")
    pool = engine.current.modules["pattern_pool.db"].pool
    assert wait_until(lambda: backends() == 2, what="the pool's two connections")
    for _ in range(5):
        reload(engine, folder / "db.py")
        assert engine.current.modules["pattern_pool.db"].pool is pool
        assert engine.current.target() > 0
    assert engine.wait_idle(10)
    assert backends() == 2
    assert (engine.stats()["purges"], engine.stats()["leaked"]) == (0, [])
    engine.close()
    assert pool.closed
    wait_until(lambda: backends() == 0, what="the pool's connections to close")


# -- a cache and its lock -------------------------------------------------------------


def test_a_cache_and_its_lock_are_shared_by_the_old_and_the_new_instance(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_cache")
    engine = engines("pattern_cache.store:recall")
    old = engine.current.modules["pattern_cache.store"]
    old.remember("greeting", "hello")
    reload(engine, folder / "store.py")
    new = engine.current.modules["pattern_cache.store"]
    assert new is not old and new.recall("greeting") == "hello"
    assert new.cache is old.cache and new.cache_lock is old.cache_lock
    old.remember("late", "from a request still running on the old code")
    assert new.recall("late") == "from a request still running on the old code"
    with old.cache_lock:
        assert new.cache_lock.locked()


# -- a background thread or a scheduler -----------------------------------------------


def test_a_thread_of_each_instance_is_stopped_by_purge_once_its_generation_retires(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_worker")
    engine = engines("pattern_worker.ticker:tick_count", leak_check_delay=0.0)
    old_worker = engine.current.modules["pattern_worker.ticker"].worker
    wait_until(lambda: engine.current.target() > 0, what="the first ticks")
    reload(engine, folder / "ticker.py")
    assert engine.wait_idle(10)
    assert not old_worker.is_alive()
    new_worker = engine.current.modules["pattern_worker.ticker"].worker
    assert new_worker is not old_worker and new_worker.is_alive()
    assert (engine.stats()["purges"], engine.stats()["leaked"]) == (1, [])
    engine.close()
    assert not new_worker.is_alive()


def test_a_scheduler_is_handed_over_and_runs_the_new_generations_jobs(
    project: Path, install: Install, engines: Make
) -> None:
    shutil.copy(PATTERNS / "scheduler_lib.py", project / "scheduler_lib.py")  # outside the root
    folder = install("pattern_scheduler")
    engine = engines("pattern_scheduler.jobs:refresh", leak_check_delay=0.0)
    scheduler = engine.current.modules["pattern_scheduler.jobs"].scheduler
    runs: list[int] = engine.current.modules["pattern_scheduler.jobs"].runs
    wait_until(lambda: 1 in runs, what="a run of the first job")
    path = folder / "jobs.py"
    path.write_text(path.read_text().replace("VERSION = 1", "VERSION = 2"))
    reload(engine, path)
    assert engine.current.modules["pattern_scheduler.jobs"].scheduler is scheduler
    wait_until(lambda: runs[-1] == 2, what="a run of the new job")
    assert scheduler.thread.is_alive()
    assert engine.wait_idle(10)
    assert (engine.stats()["purges"], engine.stats()["leaked"]) == (0, [])
    engine.close()
    assert not scheduler.thread.is_alive()


# -- a counter that must survive ------------------------------------------------------


def test_a_counter_in_a_shared_container_counts_the_old_generations_requests_too(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_counter")
    engine = engines("pattern_counter.hits:hit")
    old = engine.current.modules["pattern_counter.hits"]
    old.hit()
    old.hit()
    reload(engine, folder / "hits.py")
    new = engine.current.modules["pattern_counter.hits"]
    assert old.hit() == 3  # a request still running on the old generation
    assert new.hit() == 4
    assert new.hits is old.hits


def test_a_counter_kept_as_a_plain_int_loses_what_the_old_generation_counts(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_counter")
    engine = engines("pattern_counter.plain:hit")
    old = engine.current.modules["pattern_counter.plain"]
    old.hit()
    old.hit()
    reload(engine, folder / "plain.py")
    new = engine.current.modules["pattern_counter.plain"]
    assert old.hit() == 3
    assert new.hit() == 3  # four hits in all, but each instance saw three
    assert (old.count, new.count) == (3, 3)


# -- objects of a class defined in the reloaded module --------------------------------


def test_objects_handed_over_as_plain_data_come_back_as_the_new_class_and_nothing_leaks(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_objects")
    engine = engines("pattern_objects.carts:add_item", leak_check_delay=0.0)
    engine.current.target("ada", "tea")
    reload(engine, folder / "carts.py")
    assert engine.wait_idle(10)
    new = engine.current.modules["pattern_objects.carts"]
    cart = new.carts["ada"]
    assert type(cart) is new.Cart and cart.items == ["tea"]
    assert "_carried_carts" not in vars(new)
    assert engine.stats()["leaked"] == []


def test_objects_handed_over_as_they_are_keep_the_old_instance_alive_and_hotmod_says_so(
    install: Install, engines: Make, caplog: pytest.LogCaptureFixture
) -> None:
    folder = install("pattern_objects")
    caplog.set_level(logging.WARNING, logger="hotmod")
    engine = engines("pattern_objects.leaky_carts:add_item", leak_check_delay=0.0)
    engine.current.target("ada", "tea")
    reload(engine, folder / "leaky_carts.py")
    assert engine.wait_idle(10)
    new = engine.current.modules["pattern_objects.leaky_carts"]
    assert type(new.carts["ada"]) is not new.Cart  # the old class, with the old methods
    [leak] = engine.stats()["leaked"]
    assert (leak["module"], leak["generation"]) == ("pattern_objects.leaky_carts", 1)
    assert "class pattern_objects.leaky_carts.Cart" in leak["referrers"]
    [warning] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("leak:")]
    assert warning.startswith(
        "leak: instance of pattern_objects.leaky_carts from generation 1 is still alive after retirement:"
    )
    assert "held by class pattern_objects.leaky_carts.Cart" in warning


# -- what not to carry ---------------------------------------------------------------


def test_a_table_of_another_modules_functions_rebuilt_on_each_load_follows_its_reloads(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_not_carried")
    engine = engines("pattern_not_carried.routes:lookup", leak_check_delay=0.0)
    assert engine.current.target("greet") == "hello from version 1"
    path = folder / "handlers.py"
    path.write_text(path.read_text().replace("version 1", "version 2"))
    reload(engine, path)
    assert engine.current.target("greet") == "hello from version 2"
    assert engine.wait_idle(10)
    assert engine.stats()["leaked"] == []


def test_the_same_table_handed_over_serves_old_code_and_keeps_the_old_module_alive(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_not_carried")
    engine = engines("pattern_not_carried.stale_routes:lookup", leak_check_delay=0.0)
    path = folder / "handlers.py"
    path.write_text(path.read_text().replace("version 1", "version 2"))
    reload(engine, path)
    assert engine.current.modules["pattern_not_carried.handlers"].greet() == "hello from version 2"
    assert engine.current.target("greet") == "hello from version 1"
    assert engine.wait_idle(10)
    assert [(leak["module"], leak["generation"]) for leak in engine.stats()["leaked"]] == [
        ("pattern_not_carried.handlers", 1)
    ]


def test_request_state_handed_over_makes_the_new_instance_believe_in_the_old_request(
    install: Install, engines: Make
) -> None:
    folder = install("pattern_not_carried")
    engine = engines("pattern_not_carried.request_state:handle")
    assert engine.current.target({"REMOTE_USER": "ada"}) == "hello ada"
    reload(engine, folder / "request_state.py")
    new = engine.current.modules["pattern_not_carried.request_state"]
    assert new.audit_name() == "ada"  # no request has reached the new instance yet


# -- the guide and the checker ---------------------------------------------------------


def shown_in_the_guide() -> dict[str, str]:
    """Each code block of docs/hooks.md that starts with ``# tests/fixtures/...``:
    the path it names → the code below that line."""
    blocks = re.findall(r"```python\n# (tests/fixtures/hook_patterns/\S+)\n(.*?)```", GUIDE.read_text(), re.S)
    return dict(blocks)


def test_the_guide_shows_the_pattern_modules_exactly_as_the_tests_run_them() -> None:
    shown = shown_in_the_guide()
    assert len(shown) >= 10
    for path, code in shown.items():
        assert (REPO / path).read_text() == code, f"docs/hooks.md shows an outdated {path}"


def test_every_pattern_passes_hotmod_check_the_mistakes_too() -> None:
    # The checker reads what module-level code creates; objects of the module's own
    # classes and caches of other modules' functions are for the leak check to find.
    report = check_paths([PATTERNS])
    assert report.findings == ()
    assert len(report.files) == 20
