"""The engine's extension points and the restart-only contract (docs/hooks.md,
docs/frameworks.md), with real files in a temporary watched root."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import pytest
from conftest import Write

from hotmod.reloader import Extension, Generation, Reloader, ReloadError, ReloadEvent

Engines = Callable[..., Reloader]


@pytest.fixture
def app(write: Write, project: Path) -> Path:
    write("app/__init__.py", "")
    write("app/models.py", "__hotmod_restart__ = 'models are registered once'\nFIELDS = ('a',)\n")
    write("app/helpers.py", "SUFFIX = '!'\n")
    write("app/views.py", "from app.helpers import SUFFIX\ndef view():\n    return 'v1' + SUFFIX\n")
    write("app/wsgi.py", """
        from app import models, views
        def app(environ, start_response):
            return views.view(), models.FIELDS
    """)
    return project / "app"


def aged(*paths: Path) -> None:
    """Date ``paths`` a minute back, as a project's files are when its server starts:
    a file modified within ``RACY_SECONDS`` of its load counts as unknown, and is
    loaded again at the next look."""
    then = time.time() - 60
    for path in paths:
        os.utime(path, (then, then))


def events_of(r: Reloader) -> list[ReloadEvent]:
    """The events ``r`` publishes from now on, retirements left out."""
    seen: list[ReloadEvent] = []
    r.subscribe(lambda event: event.kind != "retired" and seen.append(event))
    return seen


def test_a_module_flagged_restart_only_is_not_swapped_and_a_restart_is_reported(
    app: Path, write: Write, engines: Engines
) -> None:
    r = engines()
    r.load()
    seen = events_of(r)
    write("app/models.py", "__hotmod_restart__ = 'models are registered once'\nFIELDS = ('a', 'b')\n")
    assert r.reload([app / "models.py"]) == 1
    assert r.current.target({}, None) == ("v1!", ("a",))  # the last generation serves
    [event] = seen
    assert event.kind == "restart_needed"
    assert event.modules == ("app.models",)
    assert event.files == (str((app / "models.py").resolve()),)
    assert "models are registered once" in event.detail
    restart = r.stats()["restart_needed"]
    assert restart is not None and restart["modules"] == ["app.models"]
    assert r.restart_needed == restart


def test_a_restart_only_edit_is_reported_once_and_later_edits_still_swap(
    app: Path, write: Write, engines: Engines
) -> None:
    write("app/models.py", "__hotmod_restart__ = True\nFIELDS = ('a',)\n")
    r = engines()
    r.load()
    seen = events_of(r)
    write("app/models.py", "__hotmod_restart__ = True\nFIELDS = ('a', 'b')\n")
    r.reload()
    r.reload()  # a scan with no new edit: nothing new to say
    assert [e.kind for e in seen] == ["restart_needed"]
    assert seen[0].detail == "app.models: the module declares __hotmod_restart__"
    write("app/views.py", "from app.helpers import SUFFIX\ndef view():\n    return 'v2' + SUFFIX\n")
    assert r.reload() == 2
    assert r.current.target({}, None) == ("v2!", ("a",))
    assert r.restart_needed is not None  # the models edit still waits for a restart


def test_an_edit_whose_plan_reaches_a_restart_only_importer_needs_a_restart(
    app: Path, write: Write, engines: Engines
) -> None:
    write("app/models.py", "__hotmod_restart__ = True\nfrom app.helpers import SUFFIX\n")
    r = engines()
    r.load()
    seen = events_of(r)
    write("app/helpers.py", "SUFFIX = '?'\n")
    assert r.reload() == 1
    assert seen[0].kind == "restart_needed"
    assert seen[0].modules == ("app.models",)
    assert seen[0].files == (str((app / "helpers.py").resolve()),)


class Recorder(Extension):
    """An extension that says models are restart-only and records its calls."""

    name = "recorder"

    def __init__(self, also: str = "") -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.also = also

    def restart_reason(self, module: str, path: str) -> str | None:
        return "said so by the extension" if module.endswith(".models") else None

    def expand_plan(self, plan: Sequence[str], current: dict[str, ModuleType]) -> list[str]:
        return [self.also] if self.also and self.also in current else []

    def before_plan(self, plan: Sequence[str]) -> None:
        self.calls.append(("before", tuple(plan)))

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        self.calls.append(("swapped", (str(generation.number),)))

    def after_discard(self, plan: Sequence[str]) -> None:
        self.calls.append(("discarded", tuple(plan)))

    def refresh(self, paths: Sequence[str]) -> list[str]:
        mine = [p for p in paths if p.endswith(".tpl")]
        self.calls.append(("refresh", tuple(Path(p).name for p in mine)))
        return mine


def test_an_extension_marks_modules_restart_only_by_name(
    app: Path, write: Write, engines: Engines
) -> None:
    write("app/models.py", "FIELDS = ('a',)\n")  # no flag of its own
    r = engines()
    r.load()
    r.extend(Recorder())
    seen = events_of(r)
    write("app/models.py", "FIELDS = ('a', 'b')\n")
    assert r.reload() == 1
    assert seen[0].kind == "restart_needed"
    assert seen[0].detail == "app.models: said so by the extension"


def test_extension_hooks_run_around_a_plan_and_undo_a_failed_one(
    app: Path, write: Write, engines: Engines
) -> None:
    r = engines()
    r.load()
    recorder = Recorder(also="app.helpers")
    r.extend(recorder)
    write("app/views.py", "from app.helpers import SUFFIX\ndef view():\n    return 'v2' + SUFFIX\n")
    assert r.reload() == 2
    # expand_plan added app.helpers, whose importers come along in order.
    assert recorder.calls == [("before", ("app.helpers", "app.views", "app.wsgi")), ("swapped", ("2",))]
    recorder.calls.clear()
    write("app/views.py", "def view(:\n")
    with pytest.raises(ReloadError):
        r.reload()
    assert [c[0] for c in recorder.calls] == ["before", "discarded"]
    assert r.current.number == 2


def test_files_an_extension_refreshes_itself_run_no_module_code(
    app: Path, write: Write, engines: Engines
) -> None:
    r = engines(extra=("*.tpl",))
    r.load()
    recorder = Recorder()
    r.extend(recorder)
    seen = events_of(r)
    page = write("app/page.tpl", "hello")
    assert r.reload([page]) == 1
    assert ("refresh", ("page.tpl",)) in recorder.calls
    assert [e.kind for e in seen] == ["refreshed"]
    assert seen[0].files == (str(page),)


def test_extending_with_a_root_adopts_the_modules_already_loaded_from_it_unchanged(
    tmp_path: Path, write: Write, project: Path, engines: Engines
) -> None:
    # A Django-like layout: the target's package is one folder of the project; an
    # app beside it is loaded by name while the target builds.
    write("proj_site/__init__.py", "")
    write("proj_site/wsgi.py", """
        import importlib
        importlib.import_module("shop.views")
        def app(environ, start_response):
            import sys
            return sys.modules["shop.views"].VALUE
    """)
    aged(write("shop/__init__.py", ""), write("shop/views.py", "VALUE = 1\n"))
    r = engines("proj_site.wsgi:app")
    r.load()
    assert "shop.views" not in r.current.modules  # outside the default root (site/)

    class ProjectRoot(Extension):
        def roots(self) -> list[str]:
            return [str(project)]

    r.extend(ProjectRoot())
    assert {"shop", "shop.views"} <= set(r.current.modules)
    assert r.reload() == 1  # adopted as loaded: no edit, no reload
    write("shop/views.py", "VALUE = 2\n")
    assert r.reload() == 2
    assert r.current.target({}, None) == 2
    assert "shop.views" in r.graph()["proj_site.wsgi"]


# -- item 1: modules loaded by name belong to the graph ------------------------------

FRAMEWORK = """
import importlib

class App:
    '''A framework's application: it imports its URLconf by name on the first
    request, and keeps it, as Django's resolver does.'''

    def __init__(self, urlconf):
        self.urlconf = urlconf
        self.module = None

    def __call__(self, environ, start_response):
        if self.module is None:
            self.module = importlib.import_module(self.urlconf)
        return self.module.ROUTES
"""


URLS = "import importlib\nROUTES = ['{first}', *importlib.import_module('app.polls').ROUTES]\n"


@pytest.fixture
def by_name_app(write: Write, project: Path) -> Path:
    write("framework.py", FRAMEWORK)  # outside the watched root: installed code
    write("app/__init__.py", "")
    write("app/wsgi.py", "import framework\napp = framework.App('app.urls')\n")
    # The URLconf includes another by name while it executes, as include("x.urls").
    write("app/urls.py", URLS.format(first="home"))
    write("app/polls.py", "ROUTES = ['polls']\n")
    aged(*(project / "app").glob("*.py"))
    return project / "app"


def test_a_module_a_framework_imports_by_name_at_request_time_rebuilds_the_target(
    by_name_app: Path, write: Write, engines: Engines
) -> None:
    r = engines()
    r.load()
    assert r.current.target({}, None) == ["home", "polls"]  # the first request imports app.urls
    write("app/urls.py", URLS.format(first="start"))
    seen = events_of(r)
    assert r.reload() == 2
    assert seen[-1].kind == "reloaded"
    assert set(seen[-1].modules) == {"app.urls", "app.wsgi"}
    assert r.current.target({}, None) == ["start", "polls"]
    assert r.graph()["app.wsgi"] == ["app.urls"]


def test_an_edit_stamped_before_a_by_name_import_began_is_still_loaded(
    by_name_app: Path, write: Write, engines: Engines
) -> None:
    # A file's mtime comes from a coarser clock than time.time(): a save a moment
    # after the import began can carry an mtime a moment before it. Adopting that
    # file as loaded would serve its old code until the next edit (it did, in CI).
    r = engines()
    r.load()
    began = time.time_ns()
    r.current.target({}, None)  # the first request imports app.urls by name
    urls = write("app/urls.py", URLS.format(first="start"))
    os.utime(urls, ns=(began - 1_000_000, began - 1_000_000))  # a tick before the import
    assert r.reload() == 2
    assert r.current.target({}, None) == ["start", "polls"]


def test_a_module_included_by_name_rebuilds_its_includer_and_the_target(
    by_name_app: Path, write: Write, engines: Engines
) -> None:
    r = engines()
    r.load()
    r.current.target({}, None)
    write("app/polls.py", "ROUTES = ['polls', 'polls/results']\n")
    seen = events_of(r)
    assert r.reload() == 2
    assert seen[-1].modules == ("app.polls", "app.urls", "app.wsgi")  # in dependency order
    assert r.current.target({}, None) == ["home", "polls", "polls/results"]
    assert r.graph()["app.urls"] == ["app.polls"]
    # Later edits still know the edge, though the include found app.polls loaded.
    write("app/polls.py", "ROUTES = []\n")
    assert r.reload() == 3
    assert r.current.target({}, None) == ["home"]


def test_a_module_imported_with_importlib_while_loading_is_a_dependency_of_its_importer(
    write: Write, project: Path, engines: Engines
) -> None:
    write("app/__init__.py", "")
    write("app/plugins.py", "NAME = 'one'\n")
    write("app/wsgi.py", """
        import importlib
        NAME = importlib.import_module("app.plugins").NAME
        def app(environ, start_response):
            return NAME
    """)
    r = engines()
    r.load()
    assert r.graph()["app.wsgi"] == ["app.plugins"]
    write("app/plugins.py", "NAME = 'uno'\n")
    assert r.reload() == 2
    assert r.current.target({}, None) == "uno"


def test_a_reload_that_does_not_reach_the_served_target_is_reported_as_such(
    write: Write, project: Path, engines: Engines
) -> None:
    write("app/__init__.py", "")
    write("app/helpers.py", "X = 1\n")
    write("app/wsgi.py", "from app.helpers import X\ndef app(environ, start_response):\n    return X\n")
    r = engines()
    r.load()
    write("app/wsgi.py", "def app(environ, start_response):\n    return 0\n")  # drops the import
    assert r.reload() == 2
    seen = events_of(r)
    write("app/helpers.py", "X = 2\n")
    assert r.reload() == 3
    [event] = seen
    assert event.kind == "unreached"
    assert "does not import app.helpers" in event.detail


def test_a_helper_imported_only_inside_functions_reaches_the_target_without_rebuilding_it(
    write: Write, project: Path, engines: Engines
) -> None:
    write("app/__init__.py", "")
    write("app/helpers.py", "X = 1\n")
    write("app/wsgi.py", "def app(environ, start_response):\n    from app.helpers import X\n    return X\n")
    r = engines()
    r.load()
    assert r.current.target({}, None) == 1
    seen = events_of(r)
    write("app/helpers.py", "X = 2\n")
    assert r.reload() == 2
    assert [e.kind for e in seen] == ["reloaded"]
    assert r.current.target({}, None) == 2


# -- item 2: no reload without an edit ------------------------------------------------

def test_starting_the_watcher_reloads_nothing_that_was_loaded_by_name_and_not_edited(
    by_name_app: Path, write: Write, engines: Engines
) -> None:
    r = engines()
    r.load()
    r.current.target({}, None)  # app.urls and app.polls loaded by name at request time
    assert r.reload() == 1  # the same comparison as the watcher's catch-up
    seen = events_of(r)
    r.watch()
    try:
        write("app/polls.py", "ROUTES = ['polls', 'more']\n")
        from support import wait_until

        wait_until(lambda: r.current.number == 2, timeout=10, what="the edit's reload")
        assert [e.kind for e in seen] == ["reloaded"]
        assert seen[0].modules == ("app.polls", "app.urls", "app.wsgi")
    finally:
        r.unwatch()
