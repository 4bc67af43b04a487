"""The watcher alone: real files, the real inotify observer and the polling backend,
a recording ``on_change``.

A test that says "nothing else was delivered" writes a sentinel file afterwards and
waits for it: events of one folder arrive in order, so whatever the edits under test
caused has been delivered by then.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from conftest import WATCHDOG_LEAKS_ON_STOP
from support import wait_until

from hotmod.reloader._inotify import Flag, InotifyEvent
from hotmod.reloader._watcher import MAX_RETRIES, ChangeBatch, Watcher, fork_epoch

BACKENDS = ["inotify", "watchdog", "polling"]
#: The backends whose forked child closes the parent's descriptors (watchdog's public
#: API cannot, see _watch_watchdog.WatchdogBackend.abandon).
FORK_BACKENDS = ["inotify", "polling"]

IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x10, 0x20


class Recorder:
    """An ``on_change`` that keeps every batch, with what each file held when it came."""

    def __init__(self, react: Callable[[ChangeBatch], None] | None = None) -> None:
        self.batches: list[ChangeBatch] = []
        self.contents: list[dict[Path, str | None]] = []
        self.threads: set[int] = set()
        self.overlaps = 0
        self._inside = 0
        self._lock = threading.Lock()
        self._react = react

    def __call__(self, batch: ChangeBatch) -> None:
        with self._lock:
            self._inside += 1
            if self._inside > 1:
                self.overlaps += 1
        self.threads.add(threading.get_ident())
        seen: dict[Path, str | None] = {}
        for path in batch.paths:
            try:
                seen[path] = path.read_text()
            except OSError:
                seen[path] = None
        with self._lock:
            self.batches.append(batch)
            self.contents.append(seen)
        try:
            if self._react is not None:
                self._react(batch)
        finally:
            with self._lock:
                self._inside -= 1

    def delivered(self, path: Path) -> bool:
        return any(path in b.paths for b in list(self.batches))

    def wait_for(self, path: Path, timeout: float = 10.0) -> ChangeBatch:
        wait_until(lambda: self.delivered(path), timeout=timeout, what=f"a batch with {path}")
        return next(b for b in list(self.batches) if path in b.paths)

    def all_paths(self) -> set[Path]:
        return {p for b in list(self.batches) for p in b.paths}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "mod.py").write_text("VALUE = 1\n")
    return folder.resolve()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_watcher(backend: str) -> Iterator[Callable[..., Watcher]]:
    """Builds started watchers on the parametrized backend; stops them all afterwards."""
    made: list[Watcher] = []

    def make(
        roots: list[Path], on_change: Callable[[ChangeBatch], None], **options: object
    ) -> Watcher:
        options.setdefault("backend", backend)
        options.setdefault("poll_interval", 0.05)
        watcher = Watcher(roots, on_change=on_change, **options)  # type: ignore[arg-type]
        made.append(watcher)
        watcher.start()
        assert watcher.backend == backend
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


def settle(recorder: Recorder, folder: Path, name: str = "sentinel.py") -> None:
    """Write a sentinel file in ``folder`` and wait until it is delivered."""
    sentinel = folder / name
    sentinel.write_text(f"# {time.monotonic()}\n")
    recorder.wait_for(sentinel)


def inotify_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                fds.append(int(name))
        except OSError:
            continue
    return fds


def inotify_watch_masks(fds: Iterable[int]) -> list[int]:
    """The event mask of every inotify watch held by these descriptors (/proc fdinfo)."""
    masks = []
    for fd in fds:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("inotify wd:"):
                    field = next(f for f in line.split() if f.startswith("mask:"))
                    masks.append(int(field.split(":")[1], 16))
    return masks


# --- editors' saves ----------------------------------------------------------------------


def test_one_save_delivers_one_batch_with_the_file(root: Path, backend: str, make_watcher) -> None:
    recorder = Recorder()
    make_watcher([root], recorder)
    mod = root / "pkg" / "mod.py"

    mod.write_text("VALUE = 2\n")
    batch = recorder.wait_for(mod)

    assert batch.paths == {mod}
    assert recorder.contents[0][mod] == "VALUE = 2\n"
    if backend == "inotify":
        assert batch.closed == {mod}
    settle(recorder, root / "pkg")
    assert [b.paths for b in recorder.batches] == [{mod}, {root / "pkg" / "sentinel.py"}]


def test_atomic_save_by_rename_delivers_the_destination_once(
    root: Path, backend: str, make_watcher
) -> None:
    recorder = Recorder()
    make_watcher([root], recorder)
    mod = root / "pkg" / "mod.py"

    temporary = root / "pkg" / ".mod.py.tmp1234"
    temporary.write_text("VALUE = 3\n")
    os.replace(temporary, mod)
    batch = recorder.wait_for(mod)

    assert mod in batch.paths and temporary not in batch.paths
    assert recorder.contents[0][mod] == "VALUE = 3\n"
    if backend == "inotify":
        assert mod in batch.closed  # renamed into place: the content is complete
    settle(recorder, root / "pkg")
    assert recorder.all_paths() == {mod, root / "pkg" / "sentinel.py"}
    assert sum(mod in b.paths for b in recorder.batches) == 1


def test_vim_style_save_with_backup_and_probe_files_delivers_only_the_file(
    root: Path, make_watcher
) -> None:
    recorder = Recorder()
    make_watcher([root], recorder)
    pkg = root / "pkg"
    mod = pkg / "mod.py"

    os.rename(mod, pkg / "mod.py~")  # vim: move the original to a backup
    (pkg / "4913").write_text("")  # vim: probe that the folder is writable
    (pkg / "4913").unlink()
    (pkg / ".mod.py.swp").write_text("swap")
    (pkg / ".#mod.py").write_text("emacs lock")
    (pkg / "mod.py___jb_tmp___").write_text("VALUE = 9\n")
    mod.write_text("VALUE = 4\n")
    (pkg / "mod.py~").unlink()
    wait_until(lambda: [c[mod] for c in recorder.contents if mod in c][-1:] == ["VALUE = 4\n"])
    settle(recorder, pkg)

    assert recorder.all_paths() == {mod, pkg / "sentinel.py"}


def test_a_template_saved_by_rename_under_a_folder_wide_extra_glob_is_one_file(
    root: Path, make_watcher
) -> None:
    # Framework support watches templates/**/*: the save's temporary file lies in the
    # same folder, and taken for a second changed file it made the save wait out the
    # quiet window of a many-file burst (~50 ms more for every template save).
    templates = root / "pkg" / "templates"
    templates.mkdir()
    page = templates / "page.html"
    page.write_text("<p>1</p>")
    recorder = Recorder()
    make_watcher([root], recorder, extra=[str(templates / "**" / "*")])
    scratch = templates / ".page.html.4242.tmp"
    scratch.write_text("<p>2</p>")
    os.replace(scratch, page)
    wait_until(lambda: [c[page] for c in recorder.contents if page in c][-1:] == ["<p>2</p>"])
    settle(recorder, root / "pkg")
    assert recorder.all_paths() == {page, root / "pkg" / "sentinel.py"}
    [batch] = [b for b in recorder.batches if page in b.paths]
    assert set(batch.paths) == {page}


def test_truncate_then_write_is_delivered_complete(root: Path, backend: str, make_watcher) -> None:
    """An in-place save that pauses between the truncate and the write: with inotify
    the batch waits for the close, so no batch ever sees the empty file; polling
    cannot know, but its last batch holds the final content."""
    recorder = Recorder()
    make_watcher([root], recorder, quiet=0.05, max_wait=2.0)
    mod = root / "pkg" / "mod.py"
    final = "VALUE = 5\n" + "# padding\n" * 50

    with open(mod, "w") as stream:  # truncates
        stream.flush()
        threading.Event().wait(0.3)  # the editor is slow: longer than the quiet window
        stream.write(final[:40])
        stream.flush()
        threading.Event().wait(0.3)
        stream.write(final[40:])
    wait_until(lambda: recorder.contents and recorder.contents[-1].get(mod) == final)

    if backend == "inotify":
        assert [c[mod] for c in recorder.contents] == [final]
        assert recorder.batches[0].closed == {mod}
    else:
        assert recorder.contents[-1][mod] == final


def test_a_consumer_checking_still_valid_never_accepts_a_half_written_save(
    root: Path, backend: str, make_watcher
) -> None:
    """In-place saves in quick succession (truncate, half, rest; 0-20 ms apart) while
    busy threads hold the GIL, so that events lag behind the files: a consumer that
    reads, then asks ``still_valid()`` (and trusts an empty file only when it is in
    ``closed``), never accepts an empty or half-written file with inotify, and ends
    on the last save with either backend (polling sees no close: best effort there,
    see docs/watcher.md).
    """
    mod = root / "pkg" / "mod.py"
    accepted: list[str] = []

    def consume(batch: ChangeBatch) -> None:
        text = mod.read_text() if mod.exists() else ""
        threading.Event().wait(0.002)  # the time a reload takes
        if not batch.still_valid() or (text == "" and mod not in batch.closed):
            batch.retry()
        elif mod in batch.paths:
            accepted.append(text)

    make_watcher([root], Recorder(consume))
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            sum(range(2000))

    hogs = [threading.Thread(target=hog) for _ in range(3)]
    for thread in hogs:
        thread.start()
    rng = random.Random(7)
    try:
        for i in range(60):
            text = f"VALUE = {i}\n" + "# padding\n" * 200 + f"# end {i}\n"
            with open(mod, "r+") as stream:
                stream.truncate(0)
                stream.flush()
                stream.write(text[: len(text) // 2])
                stream.flush()
                threading.Event().wait(0.003)
                stream.write(text[len(text) // 2 :])
            threading.Event().wait(rng.uniform(0, 0.02))
        wait_until(lambda: accepted and accepted[-1].endswith("# end 59\n"), timeout=20)
    finally:
        stop.set()
        for thread in hogs:
            thread.join(5)

    if backend == "inotify":
        half = [t[:30] for t in accepted if not t.startswith("VALUE") or "# end" not in t]
        assert half == []


def test_deleted_then_recreated_file_is_delivered_with_its_new_content(
    root: Path, make_watcher
) -> None:
    recorder = Recorder()
    make_watcher([root], recorder)
    mod = root / "pkg" / "mod.py"

    mod.unlink()
    mod.write_text("VALUE = 6\n")
    wait_until(lambda: recorder.contents and recorder.contents[-1].get(mod) == "VALUE = 6\n")


def test_five_hundred_files_in_one_burst_make_one_batch(root: Path, make_watcher) -> None:
    recorder = Recorder()
    make_watcher([root], recorder, quiet=1.0, max_wait=20.0)
    files = [root / "pkg" / f"gen_{i}.py" for i in range(500)]

    for i, path in enumerate(files):
        path.write_text(f"N = {i}\n")
    wait_until(lambda: recorder.all_paths() >= set(files), timeout=20)

    assert len(recorder.batches) == 1
    assert recorder.batches[0].paths == set(files)


def test_a_never_ending_stream_is_still_delivered_after_max_wait(root: Path, make_watcher) -> None:
    recorder = Recorder()
    make_watcher([root], recorder, quiet=0.2, max_wait=0.4)
    mod = root / "pkg" / "mod.py"
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            mod.write_text(f"VALUE = {n}\n")
            stop.wait(0.02)  # always well inside the quiet window

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        recorder.wait_for(mod, timeout=10)
    finally:
        stop.set()
        writer.join(5)
    assert not writer.is_alive()


# --- what is watched -----------------------------------------------------------------------


def test_excluded_folders_virtualenvs_and_other_files_are_ignored(
    root: Path, backend: str, make_watcher
) -> None:
    for name in (
        "__pycache__",
        ".git",
        ".hg",
        "node_modules",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
    ):
        (root / "pkg" / name).mkdir()
    (root / "env").mkdir()
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "env" / "lib").mkdir()
    (root / "generated").mkdir()
    recorder = Recorder()
    fds_before = set(inotify_fds())
    watcher = make_watcher([root], recorder, exclude=["generated/*", "*_skip.py"])

    assert watcher.folders() == {root, root / "pkg"}
    if backend == "inotify":
        # An excluded folder costs no inotify watch at all.
        assert len(inotify_watch_masks(set(inotify_fds()) - fds_before)) == 2
    for name in (
        "__pycache__",
        ".git",
        ".hg",
        "node_modules",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
    ):
        (root / "pkg" / name / "x.py").write_text("X = 1\n")
    (root / "env" / "lib" / "x.py").write_text("X = 1\n")
    (root / "generated" / "x.py").write_text("X = 1\n")
    (root / "pkg" / "mod_skip.py").write_text("X = 1\n")
    (root / "pkg" / "notes.txt").write_text("text\n")
    (root / "pkg" / "data.json").write_text("{}\n")
    settle(recorder, root / "pkg")

    assert recorder.all_paths() == {root / "pkg" / "sentinel.py"}


def test_extra_globs_report_templates(root: Path, make_watcher) -> None:
    (root / "templates").mkdir()
    recorder = Recorder()
    make_watcher([root], recorder, extra=["templates/*.html", "settings.toml"])
    page = root / "templates" / "index.html"

    page.write_text("<p>hi</p>\n")
    (root / "settings.toml").write_text("debug = true\n")
    (root / "templates" / "style.css").write_text("p {}\n")
    recorder.wait_for(page)
    recorder.wait_for(root / "settings.toml")
    settle(recorder, root / "templates", "zz.html")

    assert root / "templates" / "style.css" not in recorder.all_paths()


def test_new_sub_folder_gets_a_watch_and_its_files_are_delivered(root: Path, make_watcher) -> None:
    recorder = Recorder()
    watcher = make_watcher([root], recorder)
    sub = root / "pkg" / "sub" / "deeper"

    sub.mkdir(parents=True)
    (sub / "early.py").write_text("A = 1\n")  # may be written before the watch exists
    recorder.wait_for(sub / "early.py")
    wait_until(lambda: sub in watcher.folders())
    (sub / "late.py").write_text("B = 1\n")
    recorder.wait_for(sub / "late.py")

    (root / "pkg" / "__pycache__").mkdir()
    settle(recorder, root / "pkg")
    assert root / "pkg" / "__pycache__" not in watcher.folders()


def test_a_folder_that_becomes_a_virtualenv_loses_its_watch(root: Path, make_watcher) -> None:
    recorder = Recorder()
    watcher = make_watcher([root], recorder)
    env = root / "pkg" / "env"
    env.mkdir()
    wait_until(lambda: env in watcher.folders())

    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    wait_until(lambda: env not in watcher.folders())
    (env / "site.py").write_text("X = 1\n")
    settle(recorder, root / "pkg")

    assert env / "site.py" not in recorder.all_paths()


def test_deleted_module_is_delivered(root: Path, make_watcher) -> None:
    recorder = Recorder()
    make_watcher([root], recorder)
    mod = root / "pkg" / "mod.py"

    mod.unlink()
    recorder.wait_for(mod)

    assert recorder.contents[0][mod] is None
    assert mod not in recorder.batches[0].closed


def test_a_folder_moved_away_delivers_its_files_as_gone(
    root: Path, make_watcher, tmp_path: Path
) -> None:
    recorder = Recorder()
    watcher = make_watcher([root], recorder)

    shutil.move(root / "pkg", tmp_path / "elsewhere")
    recorder.wait_for(root / "pkg" / "mod.py")

    assert {root / "pkg" / "mod.py", root / "pkg" / "__init__.py"} <= recorder.all_paths()
    wait_until(lambda: watcher.folders() == {root})


def test_a_folder_moved_in_gets_watches_and_delivers_its_files(
    root: Path, make_watcher, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "leaf.py").write_text("L = 1\n")
    recorder = Recorder()
    watcher = make_watcher([root], recorder)

    os.rename(outside, root / "moved")
    recorder.wait_for(root / "moved" / "inner" / "leaf.py")
    wait_until(lambda: root / "moved" / "inner" in watcher.folders())
    (root / "moved" / "inner" / "leaf.py").write_text("L = 2\n")
    wait_until(lambda: recorder.contents[-1].get(root / "moved" / "inner" / "leaf.py") == "L = 2\n")


# --- batches: still_valid, retry --------------------------------------------------------------


def test_still_valid_turns_false_when_an_event_arrives_after_the_cut(
    root: Path, make_watcher
) -> None:
    mod = root / "pkg" / "mod.py"
    in_callback = threading.Event()
    verdicts: list[bool] = []

    def react(batch: ChangeBatch) -> None:
        if len(verdicts) == 0 and not in_callback.is_set():
            in_callback.set()
            wait_until(lambda: not batch.still_valid(), timeout=10, what="an event after the cut")
            verdicts.append(batch.still_valid())

    recorder = Recorder(react)
    make_watcher([root], recorder)
    mod.write_text("VALUE = 7\n")
    assert in_callback.wait(10)
    first = recorder.batches[0]
    assert mod in first.paths

    mod.write_text("VALUE = 8\n")  # while the consumer is still "loading"
    wait_until(lambda: len(recorder.batches) >= 2)

    assert verdicts == [False]
    assert mod in recorder.batches[1].paths
    assert recorder.batches[1].still_valid()


def test_retry_delivers_the_same_paths_again(root: Path, make_watcher) -> None:
    handed_back = []

    def react(batch: ChangeBatch) -> None:
        if not handed_back:
            handed_back.append(batch)
            batch.retry()
            batch.retry()  # twice is harmless

    recorder = Recorder(react)
    watcher = make_watcher([root], recorder)
    mod = root / "pkg" / "mod.py"

    mod.write_text("VALUE = 9\n")
    wait_until(lambda: len(recorder.batches) >= 2)

    assert recorder.batches[1].paths == recorder.batches[0].paths == {mod}
    settle(recorder, root / "pkg")
    assert len(recorder.batches) == 3
    assert watcher.stats()["retries"] == 1


def test_retry_gives_up_after_a_few_attempts_with_a_warning(
    root: Path, make_watcher, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(lambda batch: batch.retry())
    watcher = make_watcher([root], recorder, quiet=0.01)
    mod = root / "pkg" / "mod.py"

    with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
        mod.write_text("VALUE = 10\n")
        wait_until(lambda: watcher.stats()["gave_up"] == 1, timeout=20)

    assert len(recorder.batches) == 1 + MAX_RETRIES
    assert [r for r in caplog.records if "gave up" in r.getMessage() and str(mod) in r.getMessage()]


def test_polling_confirms_an_emptied_file_after_one_more_quiet_window(root: Path) -> None:
    """Polling sees no close event: an empty file is reported as closed only when a
    handed-back batch comes again without a new event for it."""
    mod = root / "pkg" / "mod.py"

    def react(batch: ChangeBatch) -> None:
        if mod in batch.paths and mod not in batch.closed:
            batch.retry()

    recorder = Recorder(react)
    watcher = Watcher([root], on_change=recorder, poll=True, poll_interval=0.05)
    watcher.start()
    try:
        mod.write_text("")
        wait_until(lambda: any(mod in b.closed for b in recorder.batches))
        assert mod not in recorder.batches[0].closed
    finally:
        watcher.stop()


# --- dispatch, lifecycle -------------------------------------------------------------------


def test_on_change_runs_on_one_thread_and_never_concurrently(root: Path, make_watcher) -> None:
    recorder = Recorder(lambda batch: threading.Event().wait(0.05))  # a slow consumer
    make_watcher([root], recorder, quiet=0.01)
    files = [root / "pkg" / f"c{i}.py" for i in range(5)]

    for path in files:
        path.write_text("X = 1\n")
        recorder.wait_for(path)

    assert recorder.overlaps == 0
    assert len(recorder.threads) == 1
    assert threading.get_ident() not in recorder.threads


def test_a_raising_on_change_is_logged_and_watching_goes_on(
    root: Path, make_watcher, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[ChangeBatch] = []

    def on_change(batch: ChangeBatch) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    make_watcher([root], on_change)
    with caplog.at_level(logging.ERROR, logger="hotmod.watcher"):
        (root / "pkg" / "a.py").write_text("A = 1\n")
        wait_until(lambda: len(calls) == 1)
        (root / "pkg" / "b.py").write_text("B = 1\n")
        wait_until(lambda: len(calls) == 2)

    assert any(r.exc_info and "consumer bug" in str(r.exc_info[1]) for r in caplog.records)


def test_stop_leaves_no_thread_and_no_inotify_descriptor(root: Path, backend: str) -> None:
    threads_before = set(threading.enumerate())
    fds_before = inotify_fds()
    for i in range(20):
        (root / "pkg" / f"sub{i}").mkdir()
    watcher = Watcher([root], on_change=lambda b: None, backend=backend, poll_interval=0.05)

    watcher.start()
    watcher.start()  # idempotent
    assert watcher.running
    assert len(set(threading.enumerate()) - threads_before) >= 2
    (root / "pkg" / "sub3" / "x.py").write_text("X = 1\n")
    wait_until(lambda: watcher.stats()["batches"] >= 1)
    watcher.stop(timeout=5)
    watcher.stop()  # idempotent

    assert not watcher.running
    assert set(threading.enumerate()) == threads_before
    assert inotify_fds() == fds_before


def descriptors() -> dict[int, str]:
    """Every open descriptor of this process, with what it is (a file, a pipe, inotify)."""
    seen = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            seen[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
    return seen


@pytest.mark.parametrize(
    "backend", ["inotify", pytest.param("watchdog", marks=WATCHDOG_LEAKS_ON_STOP), "polling"]
)
def test_a_hundred_start_stop_cycles_leave_no_descriptor_and_no_thread(root: Path, backend: str) -> None:
    """What a test suite or an app factory that builds and closes watchers does: the
    process ends with exactly the descriptors and threads it had (issue 18: watchdog
    7.1.1's InotifyFD left 17 inotify descriptors and 51 descriptors in all over 100)."""
    for i in range(5):
        (root / "pkg" / f"sub{i}").mkdir()
    threads_before = set(threading.enumerate())
    fds_before = descriptors()
    for _ in range(100):
        watcher = Watcher([root], on_change=lambda b: None, backend=backend, poll_interval=0.05)
        watcher.start()
        assert watcher.backend == backend and len(watcher.folders()) == 7
        watcher.stop(timeout=5)
    assert set(threading.enumerate()) == threads_before
    assert descriptors() == fds_before


def test_a_stopped_watcher_starts_again(root: Path, make_watcher) -> None:
    recorder = Recorder()
    watcher = make_watcher([root], recorder)
    watcher.stop()
    watcher.start()

    (root / "pkg" / "mod.py").write_text("VALUE = 11\n")
    recorder.wait_for(root / "pkg" / "mod.py")


def test_bad_arguments_raise_value_error_with_a_sentence(tmp_path: Path) -> None:
    def nothing(batch: ChangeBatch) -> None:
        pass

    with pytest.raises(ValueError, match="not a folder"):
        Watcher([tmp_path / "missing"], on_change=nothing)
    with pytest.raises(ValueError, match="standard library or site-packages"):
        Watcher([os.path.dirname(os.__file__)], on_change=nothing)
    with pytest.raises(ValueError, match="not one path"):
        Watcher(str(tmp_path), on_change=nothing)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quiet"):
        Watcher([tmp_path], on_change=nothing, quiet=0)
    with pytest.raises(ValueError, match="max_wait"):
        Watcher([tmp_path], on_change=nothing, quiet=1.0, max_wait=0.5)
    with pytest.raises(ValueError, match="at least one root"):
        Watcher([], on_change=nothing)


def test_hotmod_poll_in_the_environment_selects_polling(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTMOD_POLL", "1")
    assert Watcher([root], on_change=lambda b: None).backend == "polling"
    assert Watcher([root], on_change=lambda b: None, poll=False).backend == "inotify"
    monkeypatch.setenv("HOTMOD_POLL", "0")
    assert Watcher([root], on_change=lambda b: None).backend == "inotify"


# --- inotify specifics -------------------------------------------------------------------


@pytest.fixture
def watch_limit(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make inotify refuse watches beyond a count, as a full max_user_watches does."""
    from hotmod.reloader._inotify import Inotify

    def limit(allowed: int) -> None:
        real = Inotify.add_watch
        placed: list[str] = []

        def limited(self: Inotify, path: str, mask: int) -> int:
            if path not in placed:
                if len(placed) >= allowed:
                    raise OSError(errno.ENOSPC, "No space left on device", path)
                placed.append(path)
            return real(self, path, mask)

        monkeypatch.setattr(Inotify, "add_watch", limited)

    return limit


def test_inotify_watch_limit_at_start_falls_back_to_polling_with_one_warning(
    root: Path, watch_limit: Callable[[int], None], caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(6):
        (root / f"p{i}").mkdir()
    watch_limit(3)
    fds_before = inotify_fds()
    recorder = Recorder()
    watcher = Watcher([root], on_change=recorder, poll=False, poll_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
        watcher.start()
    try:
        assert watcher.backend == "polling"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "fs.inotify.max_user_watches" in warnings[0].getMessage()
        assert len(watcher.folders()) == 8
        (root / "p5" / "x.py").write_text("X = 1\n")
        recorder.wait_for(root / "p5" / "x.py")
    finally:
        watcher.stop()
    assert inotify_fds() == fds_before


def test_inotify_watch_limit_reached_by_a_new_folder_switches_to_polling(
    root: Path, watch_limit: Callable[[int], None], caplog: pytest.LogCaptureFixture
) -> None:
    watch_limit(2)
    recorder = Recorder()
    watcher = Watcher([root], on_change=recorder, poll=False, poll_interval=0.05)
    watcher.start()
    try:
        assert watcher.backend == "inotify"
        with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
            (root / "pkg" / "third").mkdir()
            wait_until(lambda: watcher.backend == "polling")
        assert "fs.inotify.max_user_watches" in caplog.text
        (root / "pkg" / "third" / "x.py").write_text("X = 1\n")
        recorder.wait_for(root / "pkg" / "third" / "x.py")
        (root / "pkg" / "mod.py").write_text("VALUE = 12\n")
        wait_until(lambda: recorder.contents[-1].get(root / "pkg" / "mod.py") == "VALUE = 12\n")
    finally:
        watcher.stop()


def test_a_server_importing_hundreds_of_modules_and_reading_files_never_floods_inotify(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only our folders are watched, and only for writes: importing and reading puts
    no event in the inotify queue, so the queue cannot overflow and edits still arrive."""
    names = []
    for p in range(10):
        package = project / f"srv{p}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "page.html").write_text("<p>template</p>\n" * 20)
        for m in range(30):
            (package / f"m{m}.py").write_text(f"import json, email.parser\nN = {m}\n")
            names.append(f"srv{p}.m{m}")
    recorder = Recorder()
    fds_before = set(inotify_fds())
    watcher = Watcher([project], on_change=recorder, poll=False, extra=["*.html"])
    watcher.start()
    try:
        masks = inotify_watch_masks(set(inotify_fds()) - fds_before)
        assert len(masks) == len(watcher.folders()) == 11
        assert all(mask & (IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE) == 0 for mask in masks)

        with caplog.at_level(logging.WARNING):
            import importlib

            for name in names:  # writes __pycache__ too, which is not watched
                importlib.import_module(name)
            for module in ("decimal", "xml.dom.minidom", "http.cookies", "wsgiref.simple_server"):
                importlib.import_module(module)
            for _ in range(40):  # requests reading templates and sources
                for path in project.glob("srv*/*"):
                    if path.is_file():
                        path.read_bytes()
            edited = project / "srv9" / "m29.py"
            edited.write_text("N = 'edited'\n")
            batch = recorder.wait_for(edited)

        assert batch.paths == {edited}
        assert "overflow" not in caplog.text.lower()
        assert watcher.stats()["events"] <= 3  # the edit's own events, nothing for the reads
    finally:
        watcher.stop()
        for name in names:
            sys.modules.pop(name, None)


def test_one_inotify_descriptor_and_one_reader_thread_watch_the_whole_tree(root: Path) -> None:
    for i in range(40):
        (root / "pkg" / f"sub{i}").mkdir()
    threads_before = set(threading.enumerate())
    fds_before = set(inotify_fds())
    watcher = Watcher([root], on_change=lambda b: None, poll=False)
    watcher.start()
    try:
        new_fds = set(inotify_fds()) - fds_before
        new_threads = set(threading.enumerate()) - threads_before
        assert len(watcher.folders()) == 42
        assert len(new_fds) == 1
        assert len(inotify_watch_masks(new_fds)) == 42
        assert sorted(t.name for t in new_threads) == ["hotmod-watch-dispatch", "hotmod-watch-inotify"]
    finally:
        watcher.stop()


def test_the_inotify_backend_stands_on_the_kernel_alone_not_on_watchdog(root: Path) -> None:
    """Issue 18: a patch release of watchdog reworked the private class our backend
    stood on. Now a watcher on Linux imports nothing of watchdog at all."""
    code = (
        "import sys\n"
        "from hotmod.reloader import Watcher\n"
        "w = Watcher([sys.argv[1]], on_change=print, backend='inotify')\n"
        "w.start(); w.stop()\n"
        "print(w.backend, sorted(m for m in sys.modules if m.partition('.')[0] == 'watchdog'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["inotify", "[]"]


def test_a_single_file_batch_is_void_once_another_file_changes_and_its_retry_joins_that_burst(
    root: Path,
) -> None:
    """One file closed after writing is handed over at once; if the burst goes on
    (a git checkout whose writer paused after its first file), the consumer learns it
    from still_valid() before using the batch, and the retried file comes with the rest."""
    mod = root / "pkg" / "mod.py"
    other = root / "pkg" / "other.py"
    verdicts: list[bool] = []

    def react(batch: ChangeBatch) -> None:
        if not verdicts:
            assert batch.still_valid()
            other.write_text("OTHER = 1\n")  # while the consumer is still "loading"
            wait_until(lambda: not batch.still_valid(), what="the burst going on")
            verdicts.append(batch.still_valid())
            batch.retry()

    recorder = Recorder(react)
    watcher = Watcher([root], on_change=recorder, poll=False)
    watcher.start()
    try:
        mod.write_text("VALUE = 2\n")
        wait_until(lambda: len(recorder.batches) >= 2)

        assert recorder.batches[0].paths == {mod}
        assert verdicts == [False]
        assert recorder.batches[1].paths == {mod, other}
        assert recorder.batches[1].still_valid()
    finally:
        watcher.stop()


def test_lost_inotify_events_deliver_every_known_file_again(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    watcher = Watcher([root], on_change=recorder, poll=False)
    watcher.start()
    try:
        backend = watcher._backend
        assert backend is not None
        with caplog.at_level(logging.WARNING, logger="hotmod.watcher"):
            # What the kernel queues when its event queue overflowed.
            backend._on_event(InotifyEvent(-1, Flag.Q_OVERFLOW, b""))  # type: ignore[attr-defined]
            wait_until(
                lambda: recorder.all_paths() >= {root / "pkg" / "__init__.py", root / "pkg" / "mod.py"}
            )
        assert "overflowed" in caplog.text
    finally:
        watcher.stop()


# --- fork -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", FORK_BACKENDS)
def test_a_forked_child_gets_its_own_working_watcher(root: Path, backend: str) -> None:
    recorder = Recorder()
    # Descriptors some earlier code of this process left open are not the watcher's.
    others = len(inotify_fds())
    watcher = Watcher([root], on_change=recorder, backend=backend, poll_interval=0.05)
    watcher.start()
    epoch = fork_epoch()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read_end)
            recorder._lock = threading.Lock()  # the parent's thread may have held it
            report = []
            report.append(f"epoch-changed={fork_epoch() != epoch}")
            report.append(f"running-before={watcher.running}")
            report.append(f"inotify-fds-before={len(inotify_fds()) - others}")
            report.append(f"restarted={watcher.after_fork()}")
            report.append(f"again={watcher.after_fork()}")
            report.append(f"inotify-fds={len(inotify_fds()) - others}")
            child_file = root / "pkg" / f"child_{os.getpid()}.py"
            child_file.write_text("C = 1\n")
            deadline = time.monotonic() + 10
            while not recorder.delivered(child_file) and time.monotonic() < deadline:
                time.sleep(0.01)
            report.append(f"delivered={recorder.delivered(child_file)}")
            watcher.stop()
            report.append(f"threads={threading.active_count()}")
            os.write(write_end, " ".join(report).encode())
            status = 0
        finally:
            os._exit(status)
    try:
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready, "the child reported nothing in 30 s"
        report = os.read(read_end, 4096).decode()
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        pid = 0
        expected_fds = 1 if backend == "inotify" else 0
        assert report.split() == [
            "epoch-changed=True",
            "running-before=False",
            "inotify-fds-before=0",  # the parent's was closed as the child forked
            "restarted=True",
            "again=False",
            f"inotify-fds={expected_fds}",
            "delivered=True",
            "threads=1",
        ]
        # The parent's watcher was not disturbed by the child's.
        assert watcher.running and not watcher.after_fork()
        (root / "pkg" / "parent.py").write_text("P = 1\n")
        recorder.wait_for(root / "pkg" / "parent.py")
    finally:
        os.close(read_end)
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        watcher.stop()
