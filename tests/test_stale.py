"""Old code still reachable means stale (``reloader/_stale.py``, rule 3 of issue 20):
after a retirement, a function, class or method of a replaced instance that a
library still holds is named with its holder, the process is told it needs a
restart, and the module is restart-only from then on. What the generations hold
themselves (a clone hook's hand-over), keys of caches and plain reloads are not.

The app is tests/fixtures/stale/staleapp (the watched root); the "library" is
tests/fixtures/stale/stale_lib.py, copied to a folder of its own on sys.path,
outside the roots."""

from __future__ import annotations

import logging
import shutil
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import replace

from hotmod.reloader import Reloader, ReloadEvent
from hotmod.reloader._stale import Scope, definitions, find_holders

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stale"

Make = Callable[..., Reloader]


@pytest.fixture
def app(project: Path, tmp_path: Path) -> Iterator[Path]:
    """The watched package ``staleapp``; ``stale_lib`` importable from outside the roots."""
    library = tmp_path / "site"
    library.mkdir()
    shutil.copy(FIXTURE / "stale_lib.py", library / "stale_lib.py")
    sys.path.append(str(library))
    shutil.copytree(FIXTURE / "staleapp", project / "staleapp")
    yield project / "staleapp"
    stale_lib = sys.modules.get("stale_lib")
    if stale_lib is not None:
        stale_lib.stop_workers()


@pytest.fixture
def started(engines: Make) -> Make:
    def start(target: str) -> Reloader:
        engine = engines(target)
        engine.load()
        return engine

    return start


def edit(path: Path, old: str = "VERSION = 1", new: str = "VERSION = 2") -> None:
    replace(path, old, new)


def reloaded(engine: Reloader, path: Path) -> None:
    """Reload ``path``; wait for the retirement and its leak and stale checks."""
    before = engine.current.number
    assert engine.reload([path]) == before + 1
    assert engine.wait_idle(10)


def stale_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stale code:")]


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="hotmod")
    return caplog


# -- named holders outside the generations -------------------------------------------------


def test_a_class_attribute_bound_by_name_is_named_and_the_process_needs_a_restart(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.by_attribute:version")
    events: list[ReloadEvent] = []
    engine.subscribe(events.append)
    assert engine.current.target() == 1
    edit(app / "paging.py")
    reloaded(engine, app / "paging.py")
    assert engine.current.target() == 1  # what users met: "reloaded", and the old class serves
    [found] = engine.stats()["stale"]
    assert (found["holder"], found["object"], found["generation"], found["module"]) == (
        "stale_lib.GenericView.pagination_class", "staleapp.paging.Pagination", 1, "staleapp.paging",
    )
    line = "stale_lib.GenericView.pagination_class still holds staleapp.paging.Pagination of generation 1"
    assert [line in message for message in stale_lines(warnings)] == [True]
    restart = engine.restart_needed
    assert restart is not None and line in restart["reason"]
    assert restart["modules"] == ["staleapp.paging"]
    assert restart["files"] == [str(app / "paging.py")]
    [event] = [e for e in events if e.kind == "restart_needed"]
    assert line in event.detail and event.modules == ("staleapp.paging",)


def test_a_handler_in_a_registry_list_is_named(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.by_registry:versions")
    edit(app / "by_registry.py")
    reloaded(engine, app / "by_registry.py")
    assert engine.current.target() == [1, 2]  # both handlers answer: the old one is stale
    assert [(s["holder"], s["object"]) for s in engine.stats()["stale"]] == [
        ("stale_lib.HANDLERS[0]", "staleapp.by_registry.on_event")
    ]
    assert engine.restart_needed is not None


@pytest.mark.parametrize(
    ("target", "holder"),
    [
        ("staleapp.by_cache:version", "stale_lib.load (cached result for 'staleapp.paging.Pagination')"),
        (
            "staleapp.by_cache:version_forever",
            "stale_lib.load_forever (cached result for 'staleapp.paging.Pagination')",
        ),
    ],
    ids=["lru_cache", "functools.cache"],
)
def test_a_class_cached_by_a_functools_cache_is_named(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture, target: str, holder: str
) -> None:
    engine = started(target)
    assert engine.current.target() == 1  # the cache holds generation 1's class now
    edit(app / "paging.py")
    reloaded(engine, app / "paging.py")
    assert engine.current.target() == 1
    assert [(s["holder"], s["object"]) for s in engine.stats()["stale"]] == [
        (holder, "staleapp.paging.Pagination")
    ]
    assert engine.restart_needed is not None


def test_a_running_threads_target_is_named(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.by_thread:version")
    edit(app / "by_thread.py")
    reloaded(engine, app / "by_thread.py")
    assert ("thread 'stale-worker' target", "staleapp.by_thread.work") in [
        (s["holder"], s["object"]) for s in engine.stats()["stale"]
    ]
    assert engine.restart_needed is not None


def test_a_closure_in_library_code_is_named(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.by_closure:serve")
    edit(app / "by_closure.py")
    reloaded(engine, app / "by_closure.py")
    assert engine.current.target() == "hello v1"  # the router kept the first registration
    holders = {s["holder"]: s["object"] for s in engine.stats()["stale"]}
    assert holders == {"stale_lib.ROUTES['/hello'] (closure variable 'view')": "staleapp.by_closure.hello"}
    assert engine.restart_needed is not None


def test_a_module_found_stale_is_restart_only_for_the_rest_of_the_process(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.by_attribute:version")
    edit(app / "paging.py")
    reloaded(engine, app / "paging.py")
    assert engine.stats()["stale"]
    events: list[ReloadEvent] = []
    engine.subscribe(events.append)
    edit(app / "paging.py", "VERSION = 2", "VERSION = 3")
    assert engine.reload([app / "paging.py"]) == 2  # nothing swapped: a restart is asked for
    [event] = events
    assert event.kind == "restart_needed" and event.modules == ("staleapp.paging",)
    assert "an earlier reload of it left old code in use outside the generations" in event.detail
    assert "stale_lib.GenericView.pagination_class" in event.detail
    # The module that imported it by name still reloads in-process.
    replace(app / "by_attribute.py", "def version", "ANOTHER = 1\n\n\ndef version")
    assert engine.reload([app / "by_attribute.py"]) == 3


# -- not stale -----------------------------------------------------------------------------


def test_objects_a_clone_hook_hands_over_are_held_data_not_stale_code(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.handed_over:read")
    edit(app / "handed_over.py")
    reloaded(engine, app / "handed_over.py")
    new = engine.current.modules["staleapp.handed_over"]
    assert type(new.box) is not new.Box  # the old class lives on in the handed-over objects
    assert engine.stats()["stale"] == []
    assert engine.restart_needed is None
    assert stale_lines(warnings) == []
    assert [leak["module"] for leak in engine.stats()["leaked"]] == ["staleapp.handed_over"]


def test_a_plain_reload_with_nothing_held_reports_nothing(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    engine = started("staleapp.plain:greet")
    for version in (2, 3, 4):
        edit(app / "plain.py", f"VERSION = {version - 1}", f"VERSION = {version}")
        reloaded(engine, app / "plain.py")
        assert engine.current.target() == f"hello v{version}"
    stats = engine.stats()
    assert (stats["stale"], stats["leaked"], engine.restart_needed) == ([], [], None)
    assert stale_lines(warnings) == []


def test_cache_entries_keyed_by_old_code_are_not_stale(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    # typing.Optional[Thing] and friends stay in typing's lru caches, keyed by the old
    # Thing; so do a library cache's entries for it. Only old code can look them up.
    engine = started("staleapp.typed:version")
    edit(app / "typed.py")
    reloaded(engine, app / "typed.py")
    assert engine.current.target() == 2
    assert engine.stats()["stale"] == []
    assert engine.restart_needed is None


# -- the search itself ---------------------------------------------------------------------


def test_definitions_are_the_functions_classes_and_methods_a_module_defines(
    app: Path, started: Make
) -> None:
    engine = started("staleapp.plain:greet")
    module = engine.current.modules["staleapp.plain"]
    names = sorted(d.name for d in definitions(module, "staleapp.plain"))
    assert names == [
        "staleapp.plain.Greeter", "staleapp.plain.Greeter.greet", "staleapp.plain.Greeter.version",
        "staleapp.plain.greet",
    ]


def test_the_search_stops_at_the_generations_unless_a_library_global_holds_the_same_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Held:
        pass

    kept = [Held]
    namespace = {"__name__": "app", "kept": kept}  # a live generation's module namespace
    assert find_holders([("app.Held", Held)], Scope([namespace], lambda name: name == "app")) == []
    library = types.ModuleType("hm_stale_library")
    library.REGISTRY = kept  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hm_stale_library", library)
    [holding] = find_holders([("app.Held", Held)], Scope([namespace], lambda name: name == "app"))
    assert (holding.holder, holding.held, holding.kind) == (
        "hm_stale_library.REGISTRY[0]", "app.Held", "global",
    )


def test_a_bounded_lru_caches_entries_are_read_on_this_python() -> None:
    # The key rule reads a bounded lru_cache's entries from what its wrapper shows the
    # collector; if a Python lays them out otherwise, every result counts (and typing's
    # caches would be reported): this says so first.
    import functools

    from hotmod.reloader._stale import _cache_layout

    @functools.lru_cache(maxsize=8)
    def square(x: object) -> tuple[object, object]:
        return (x, x)

    results = {n: square(n) for n in ("a", 2, (3,))}
    cache, entries = _cache_layout(square)
    assert cache is not None and entries is not None
    assert sorted(map(repr, (result for _key, result in entries))) == sorted(map(repr, results.values()))
    forever = functools.cache(lambda x: [x])
    forever("k")
    assert _cache_layout(forever) == ({"k": ["k"]}, [])


def test_a_lazy_proxy_is_never_asked_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    # Flask's `request` outside a request, Django's `settings` before configuration:
    # any attribute asked of them raises. The walk and the search ask only types.
    class Touchy:
        def __init__(self, target: object) -> None:
            object.__setattr__(self, "_target", target)

        def __getattribute__(self, name: str) -> object:
            raise RuntimeError(f"working outside of a request context (asked for {name})")

    module = types.ModuleType("app.touchy")
    exec("def view():\n    pass\n\n\nclass Pagination:\n    pass\n", vars(module))
    module.request = Touchy(module.Pagination)  # type: ignore[attr-defined]
    names = sorted(d.name for d in definitions(module, "app.touchy"))
    assert names == ["app.touchy.Pagination", "app.touchy.view"]
    library = types.ModuleType("hm_stale_touchy")
    library.PROXY = module.request  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hm_stale_touchy", library)
    scope = Scope([], lambda name: name == "app.touchy")
    [holding] = find_holders([("app.touchy.Pagination", module.Pagination)], scope)
    assert holding.holder == "hm_stale_touchy.PROXY._target"


def test_a_retired_generation_s_app_kept_by_a_library_is_a_leak_not_stale_code(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    """Nobody serves a retired generation's app: a library that keeps the old app
    object (CherryPy's start-up checker, one generation behind) keeps its code
    alive but never runs it in place of the new. Not a restart."""
    engine = started("staleapp.by_app:app")
    edit(app / "by_app.py")
    reloaded(engine, app / "by_app.py")
    assert engine.current.target() == 2
    import stale_lib  # type: ignore[import-not-found]

    assert stale_lib.PREVIOUS is not None and stale_lib.PREVIOUS() == 1  # the old app, kept
    assert engine.stats()["stale"] == []
    assert engine.restart_needed is None
    assert stale_lines(warnings) == []


def test_an_instance_of_an_old_class_that_a_library_keeps_outside_any_app_is_stale(
    app: Path, started: Make, warnings: pytest.LogCaptureFixture
) -> None:
    """The control: the same class, held through an instance a library registered
    (an admin's view objects): its methods are the old code a library calls."""
    edit(app / "by_app.py", "REGISTER_VIEW = False", "REGISTER_VIEW = True")
    engine = started("staleapp.by_app:app")
    edit(app / "by_app.py")
    reloaded(engine, app / "by_app.py")
    holders = [(s["holder"], s["object"]) for s in engine.stats()["stale"]]
    assert ("stale_lib.VIEWS[0].__class__", "staleapp.by_app.Root") in holders, holders
    assert engine.restart_needed is not None
