"""The watcher's own logic with a scripted backend: routing of events to folders and
files, the fallback to polling, lost events, and the choice of backend.

No kernel here (hupper's ``DummyMonitor``, watchfiles' mock of its native layer): a
:class:`ScriptedBackend` stands where inotify or watchdog would, records what the
watcher asks of it, and delivers the events a test scripts, on the test's thread.
The files are real (the watcher reads their signatures); tests/test_watcher.py
keeps the same behaviour proved through the real kernel.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from support import wait_until

from hotmod.reloader import _watcher
from hotmod.reloader._watch_backend import Backend, RawEvent, RawKind
from hotmod.reloader._watcher import ChangeBatch, Watcher, choose_backend


class ScriptedBackend:
    """A native backend that reports what a test tells it to, and nothing else."""

    name = "inotify"
    reports_close = True
    scans = False
    #: Set by a test before the watcher starts: what ``schedule`` raises, and after
    #: how many folders; what the constructor raises.
    refuse_after: int | None = None
    refuse_errno = errno.ENOSPC
    fail_to_open: BaseException | None = None
    made: list[ScriptedBackend] = []

    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        if self.fail_to_open is not None:
            raise self.fail_to_open
        self.sink = sink
        self.scheduled: list[str] = []
        self.unscheduled: list[str] = []
        self.syncs = 0
        self.started = self.stopped = self.abandoned = False
        type(self).made.append(self)

    def start(self) -> None:
        self.started = True

    def schedule(self, folder: str) -> bool:
        if self.refuse_after is not None and len(self.scheduled) >= self.refuse_after:
            raise OSError(self.refuse_errno, os.strerror(self.refuse_errno), folder)
        if not os.path.isdir(folder):
            return False
        self.scheduled.append(folder)
        return True

    def unschedule(self, folder: str) -> None:
        self.unscheduled.append(folder)

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        self.syncs += 1
        return True  # every scripted event was delivered before the call returned

    def stop(self, timeout: float) -> list[threading.Thread]:
        self.stopped = True
        return []

    def abandon(self) -> None:
        self.abandoned = True

    # --- the script ---------------------------------------------------------------------

    def emit(self, kind: RawKind, path: Path | str = "", *, is_dir: bool = False) -> None:
        self.sink(RawEvent(kind, str(path), is_dir))

    def save(self, path: Path, text: str) -> None:
        """An in-place save, with the events inotify would report for it."""
        existed = path.exists()
        path.write_text(text)
        if not existed:
            self.emit(RawKind.CREATED, path)
        self.emit(RawKind.MODIFIED, path)
        self.emit(RawKind.CLOSED, path)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ScriptedBackend]]:
    """Every native backend the watcher opens is a :class:`ScriptedBackend`; polling
    stays the real one (the fallback's target)."""
    real = _watcher.backend_class

    class Scripted(ScriptedBackend):
        made: list[ScriptedBackend] = []

    def backend_class(name: str) -> Callable[..., Backend]:
        return real("polling") if name == "polling" else Scripted

    monkeypatch.setattr(_watcher, "backend_class", backend_class)
    yield Scripted


class Batches:
    def __init__(self) -> None:
        self.got: list[ChangeBatch] = []

    def __call__(self, batch: ChangeBatch) -> None:
        self.got.append(batch)

    def paths(self) -> set[Path]:
        return {p for b in list(self.got) for p in b.paths}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    return tmp_path.resolve()


Watching = tuple[Watcher, ScriptedBackend, Batches]


@pytest.fixture
def watching(root: Path, scripted: type[ScriptedBackend]) -> Iterator[Watching]:
    batches = Batches()
    watcher = Watcher([root], on_change=batches, backend="inotify", poll_interval=0.05)
    watcher.start()
    try:
        yield watcher, scripted.made[-1], batches
    finally:
        watcher.stop()


def test_the_watcher_schedules_one_watch_per_wanted_folder_and_none_for_excluded_ones(
    root: Path, scripted: type[ScriptedBackend]
) -> None:
    for name in ("__pycache__", ".git", "node_modules", "sub"):
        (root / "pkg" / name).mkdir()
    watcher = Watcher([root], on_change=Batches(), backend="inotify")
    watcher.start()
    try:
        backend = scripted.made[-1]
        assert backend.started
        assert sorted(backend.scheduled) == sorted(str(p) for p in (root, root / "pkg", root / "pkg" / "sub"))
    finally:
        watcher.stop()
    assert backend.stopped


def test_a_scripted_save_makes_one_batch_with_the_file_closed(
    root: Path, watching: Watching
) -> None:
    _, backend, batches = watching
    mod = root / "pkg" / "mod.py"
    backend.save(mod, "VALUE = 2\n")
    wait_until(lambda: batches.got)
    assert batches.got[0].paths == {mod}
    assert batches.got[0].closed == {mod}
    assert len(batches.got) == 1


def test_events_for_files_nobody_wants_are_dropped(
    root: Path, watching: Watching
) -> None:
    _, backend, batches = watching
    for name in ("notes.txt", ".mod.py.swp", "4913"):
        backend.save(root / "pkg" / name, "x")
    backend.save(root / "pkg" / "mod.py", "VALUE = 3\n")
    wait_until(lambda: batches.got)
    assert batches.paths() == {root / "pkg" / "mod.py"}
    assert watching[0].stats()["events"] == 2  # modified and closed of mod.py, nothing else


def test_a_new_folder_gets_a_watch_and_its_files_come_as_one_batch(
    root: Path, watching: Watching
) -> None:
    _, backend, batches = watching
    sub = root / "pkg" / "sub"
    sub.mkdir()
    (sub / "a.py").write_text("A = 1\n")  # written before any watch could see it
    backend.emit(RawKind.CREATED, sub, is_dir=True)
    wait_until(lambda: batches.got)
    assert str(sub) in backend.scheduled
    assert batches.paths() == {sub / "a.py"}


def test_a_deleted_folder_loses_its_watch_and_its_files_come_as_gone(
    root: Path, watching: Watching
) -> None:
    watcher, backend, batches = watching
    pkg = root / "pkg"
    for path in pkg.iterdir():
        path.unlink()
    pkg.rmdir()
    backend.emit(RawKind.DELETED, pkg, is_dir=True)
    wait_until(lambda: batches.got)
    assert str(pkg) in backend.unscheduled
    assert batches.paths() == {pkg / "__init__.py", pkg / "mod.py"}
    assert all(not p.exists() for p in batches.paths())
    assert pkg not in watcher.folders()


def test_a_folder_that_becomes_a_virtualenv_loses_its_watch_and_reports_nothing(
    root: Path, watching: Watching
) -> None:
    watcher, backend, batches = watching
    (root / "pkg" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    backend.emit(RawKind.CREATED, root / "pkg" / "pyvenv.cfg")
    assert str(root / "pkg") in backend.unscheduled
    assert root / "pkg" not in watcher.folders()
    backend.save(root / "mod_top.py", "X = 1\n")
    wait_until(lambda: batches.got)
    assert batches.paths() == {root / "mod_top.py"}


def test_lost_events_deliver_every_known_file_once_with_a_warning(
    root: Path, watching: Watching, caplog: pytest.LogCaptureFixture
) -> None:
    _, backend, batches = watching
    with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
        backend.emit(RawKind.OVERFLOW)
        wait_until(lambda: batches.paths() >= {root / "pkg" / "__init__.py", root / "pkg" / "mod.py"})
    assert "lost events" in caplog.text


def test_a_backend_that_cannot_open_falls_back_to_polling_with_one_warning(
    root: Path, scripted: type[ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    scripted.fail_to_open = OSError(errno.EMFILE, "Too many open files")
    batches = Batches()
    watcher = Watcher([root], on_change=batches, backend="inotify", poll_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
        watcher.start()
    try:
        assert watcher.backend == "polling"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "max_user_instances" in warnings[0]
        (root / "pkg" / "mod.py").write_text("VALUE = 4\n")
        wait_until(lambda: root / "pkg" / "mod.py" in batches.paths())
    finally:
        watcher.stop()


def test_a_backend_missing_on_this_platform_falls_back_to_polling_and_says_so(
    root: Path, scripted: type[ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    scripted.fail_to_open = ImportError("no native observer")
    watcher = Watcher([root], on_change=Batches(), backend="watchdog")
    with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
        watcher.start()
    try:
        assert watcher.backend == "polling"
        assert "watchdog is not available here (no native observer)" in caplog.text
    finally:
        watcher.stop()


def test_a_limit_reached_by_a_later_folder_moves_every_folder_to_polling(
    root: Path, scripted: type[ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    scripted.refuse_after = 2  # root and pkg get their watches, the next one does not
    batches = Batches()
    watcher = Watcher([root], on_change=batches, backend="inotify", poll_interval=0.05)
    watcher.start()
    try:
        backend = scripted.made[-1]
        assert watcher.backend == "inotify"
        sub = root / "pkg" / "sub"
        sub.mkdir()
        with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
            backend.emit(RawKind.CREATED, sub, is_dir=True)
            wait_until(lambda: watcher.backend == "polling")
        assert backend.stopped
        assert "fs.inotify.max_user_watches" in caplog.text
        assert watcher.folders() == {root, root / "pkg", sub}
        (sub / "x.py").write_text("X = 1\n")
        wait_until(lambda: sub / "x.py" in batches.paths())
    finally:
        watcher.stop()


def test_the_backend_is_chosen_by_name_then_poll_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOTMOD_WATCHER", raising=False)
    monkeypatch.delenv("HOTMOD_POLL", raising=False)
    native = "inotify" if os.uname().sysname == "Linux" else "watchdog"
    assert choose_backend(None, None) == native
    assert choose_backend("watchdog", None) == "watchdog"
    assert choose_backend(None, True) == "polling"
    assert choose_backend(None, False) == native
    monkeypatch.setenv("HOTMOD_POLL", "1")
    assert choose_backend(None, None) == "polling"
    assert choose_backend(None, False) == native
    monkeypatch.setenv("HOTMOD_WATCHER", "watchdog")  # the more precise of the two wins
    assert choose_backend(None, None) == "watchdog"
    assert choose_backend("inotify", None) == "inotify"


def test_a_bad_backend_name_or_a_contradiction_is_a_value_error_that_says_which(
    monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    with pytest.raises(ValueError, match="backend must be one of inotify, watchdog, polling, not 'kqueue'"):
        Watcher([root], on_change=Batches(), backend="kqueue")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll=True contradicts backend='inotify'"):
        Watcher([root], on_change=Batches(), backend="inotify", poll=True)
    monkeypatch.setenv("HOTMOD_WATCHER", "fsevents")
    with pytest.raises(ValueError, match="HOTMOD_WATCHER='fsevents' in the environment"):
        Watcher([root], on_change=Batches())


def test_a_limit_reached_while_starting_switches_once_and_stop_leaves_no_thread(
    root: Path, scripted: type[ScriptedBackend]
) -> None:
    """The walk of the tree at start and the dispatcher must not both switch to
    polling: two switches made two polling backends, one never stopped (26 polling
    threads left over 60 starts, before the dispatcher started after the walk)."""
    for i in range(6):
        (root / f"p{i}").mkdir()
    scripted.refuse_after = 3
    threads_before = set(threading.enumerate())
    for _ in range(30):
        watcher = Watcher([root], on_change=Batches(), backend="inotify", poll_interval=0.05)
        watcher.start()
        assert watcher.backend == "polling"
        watcher.stop(timeout=5)
        assert set(threading.enumerate()) == threads_before
