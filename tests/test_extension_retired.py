"""The engine's ``Extension.retired(generation)`` hook (reloader/_extension.py,
reloader/_retire.py): called once per retired generation, on the janitor thread,
after the purge hooks it made due, while its target and instances are still there;
an exception in it is logged with its traceback and stops nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Write
from support import wait_until

from hotmod.reloader import Extension, Generation, Reloader

Engines = Callable[..., Reloader]


@pytest.fixture
def app(write: Write, project: Path) -> Path:
    write("rapp/__init__.py", "")
    write("rapp/store.py", """
        PURGED = []
        VERSION = 1

        def __mp_purge__(module):
            PURGED.append(module.VERSION)
    """)
    write("rapp/wsgi.py", """
        from rapp import store

        def app(environ, start_response):
            return store.VERSION
    """)
    return project / "rapp"


class Recorder(Extension):
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.fail = False

    def retired(self, generation: Generation) -> None:
        store = generation.modules["rapp.store"]
        self.seen.append({
            "number": generation.number,
            "thread": threading.current_thread().name,
            "target": generation.target({}, None),
            "purged_before": list(store.PURGED),
        })
        if self.fail:
            raise LookupError("the retired hook broke")


def edit(app: Path, version: int) -> Path:
    path = app / "store.py"
    path.write_text(path.read_text().replace(f"VERSION = {version - 1}", f"VERSION = {version}"))
    return path


def test_retired_runs_on_the_janitor_after_the_purges_with_the_generation_whole(
    app: Path, engines: Engines
) -> None:
    r = engines("rapp.wsgi:app")
    r.load()
    recorder = Recorder()
    r.extend(recorder)
    first = r.current
    r.reload([edit(app, 2)])
    wait_until(lambda: recorder.seen, what="the retired hook")
    [seen] = recorder.seen
    assert seen["number"] == 1
    assert seen["thread"].startswith("hotmod-janitor")
    assert seen["target"] == 1  # the retired generation's own target, still there
    assert seen["purged_before"] == [1]  # store's old instance was purged first
    wait_until(lambda: not first.modules and first.target is None, what="the release after the hook")
    r.reload([edit(app, 3)])
    wait_until(lambda: len(recorder.seen) == 2, what="the second retirement")
    assert [s["number"] for s in recorder.seen] == [1, 2]
    r.close()
    assert [s["number"] for s in recorder.seen] == [1, 2]  # the current generation is not retired


def test_an_exception_in_retired_is_logged_and_the_generation_still_released(
    app: Path, engines: Engines, caplog: pytest.LogCaptureFixture
) -> None:
    r = engines("rapp.wsgi:app")
    r.load()
    recorder = Recorder()
    recorder.fail = True
    r.extend(recorder)
    first = r.current
    assert r.reload([edit(app, 2)]) == 2
    wait_until(lambda: "the retired hook broke" in caplog.text, what="the logged failure")
    assert "extension recorder failed after generation 1 retired" in caplog.text
    assert "Traceback" in caplog.text
    wait_until(lambda: not first.modules, what="the release")
    assert r.reload([edit(app, 3)]) == 3
    assert r.current.target({}, None) == 3
