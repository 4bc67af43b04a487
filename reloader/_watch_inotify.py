"""The inotify backend: watchdog's inotify observer, one non-recursive watch per folder.

Only created, modified, deleted, moved and closed-after-write events are asked for
(watchdog's ``event_filter``, which also narrows the kernel's inotify mask): opened and
closed-without-write events would put one event in the queue for every ``import`` and
every template read, and flood it. The observer runs with ``generate_full_events`` so
that a file moved in from an unwatched folder arrives as a move (its content is
complete) rather than as a creation (a write that is about to start).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from ._watcher import RawEvent

#: The only events hotmod subscribes to; never opened nor closed-without-write.
#: Attribute changes cost nothing more: watchdog asks the kernel for IN_ATTRIB with
#: modifications anyway. They tell a ``touch`` apart from a write still in flight.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    DirAttribEvent,  # the barrier of sync()
]

_KINDS: dict[type[FileSystemEvent], str] = {
    FileCreatedEvent: "created",
    FileModifiedEvent: "modified",
    FileAttribEvent: "attrib",
    FileDeletedEvent: "deleted",
    FileMovedEvent: "moved",
    FileClosedEvent: "closed",
    DirCreatedEvent: "created",
    DirDeletedEvent: "deleted",
    DirMovedEvent: "moved",
}


def _text(path: bytes | str) -> str:
    return os.fsdecode(path) if path else ""


class _Handler(FileSystemEventHandler):
    """The handler of one folder's watch: it knows which watch an event came through,
    which is what makes that folder's attribute change a barrier (see ``sync``)."""

    def __init__(self, backend: InotifyBackend, folder: str) -> None:
        self._backend = backend
        self._folder = folder

    def dispatch(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirAttribEvent):
            if _text(event.src_path) == self._folder:
                self._backend._barrier_passed(self._folder)
            return
        kind = _KINDS.get(type(event))
        if kind is not None:
            self._backend._sink(
                RawEvent(kind, _text(event.src_path), _text(event.dest_path), event.is_directory)
            )


class InotifyBackend:
    """Watchdog's inotify observer behind the watcher's backend interface."""

    name = "inotify"
    reports_close = True

    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        self._sink = sink
        # Creating the observer opens the inotify descriptor: EMFILE surfaces here.
        self._observer = InotifyObserver(generate_full_events=True)
        self._observer.name = "hotmod-watch-inotify"
        # Folder -> its watch, and the barriers awaited per folder; owned by _lock.
        self._lock = threading.Lock()
        self._watches: dict[str, ObservedWatch] = {}
        self._barriers: dict[str, list[threading.Event]] = {}

    def start(self) -> None:
        self._observer.start()

    def schedule(self, folder: str) -> bool:
        with self._lock:
            if folder in self._watches:
                return True
        try:
            watch = self._observer.schedule(
                _Handler(self, folder), folder, recursive=False, event_filter=EVENT_FILTER
            )
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            return False
        with self._lock:
            self._watches[folder] = watch
        return True

    def unschedule(self, folder: str) -> None:
        with self._lock:
            watch = self._watches.pop(folder, None)
        if watch is not None:
            # The emitter of a deleted folder has already removed itself.
            with contextlib.suppress(KeyError):
                self._observer.unschedule(watch)

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        """Return once every event that happened in ``folders`` before the call has
        reached the sink; False if that could not be made sure within ``timeout``.

        Events of one folder's watch travel in order through one emitter thread, so
        an attribute change of the folder itself, made now, arrives after all of them:
        the folder's times are set to what they already are (only its ctime moves).
        """
        deadline = time.monotonic() + timeout
        waiting: list[threading.Event] = []
        for folder in folders:
            passed = threading.Event()
            with self._lock:
                if folder not in self._watches:
                    continue
                self._barriers.setdefault(folder, []).append(passed)
            try:
                st = os.stat(folder)
                os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
            except OSError:
                with self._lock:
                    self._barriers.pop(folder, None)
                return False  # gone, or not ours to touch: no barrier possible
            waiting.append(passed)
        return all(passed.wait(max(0.0, deadline - time.monotonic())) for passed in waiting)

    def _barrier_passed(self, folder: str) -> None:
        with self._lock:
            passed = self._barriers.pop(folder, [])
        for event in passed:
            event.set()

    def stop(self, timeout: float) -> list[threading.Thread]:
        with self._lock:
            barriers, self._barriers = self._barriers, {}
        for waiting in barriers.values():  # nobody will pass them now
            for event in waiting:
                event.set()
        emitters = list(self._observer.emitters)
        self._observer.stop()  # stops and joins the emitters and the inotify reader
        self._observer.join(timeout)
        with self._lock:
            self._watches.clear()
        return [t for t in [self._observer, *emitters] if t.is_alive()]

    def abandon(self) -> None:
        # In a forked child: the observer's threads do not exist here and its locks may
        # be held forever, so nothing of it is called; only the descriptors the child
        # inherited are closed, or the kernel would keep the parent's watches alive in
        # every worker. Watchdog 7 keeps one descriptor on the observer; older versions
        # keep one per emitter (emitter._inotify._inotify). Private names, so looked up
        # defensively: a version that renamed them leaks descriptors, nothing worse.
        holders: list[object] = [getattr(self._observer, "_inotify_fd", None)]
        for emitter in list(getattr(self._observer, "_emitters", ())):
            buffer = getattr(emitter, "_inotify", None)
            holders += [buffer, getattr(buffer, "_inotify", None)]
        for holder in holders:
            for name in ("_inotify_fd", "_kill_r", "_kill_w"):
                fd = getattr(holder, name, None)
                if isinstance(fd, int) and not isinstance(fd, bool):
                    with contextlib.suppress(OSError):
                        os.close(fd)
