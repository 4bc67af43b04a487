"""The watchdog backend: the platform's native file events through watchdog's public API.

Where there is no inotify (macOS, the BSDs, Windows), ``watchdog.observers.Observer``
is the platform's native observer: FSEvents, kqueue, ``ReadDirectoryChangesW``. This
backend schedules one non-recursive watch per folder on it, as hupper's watchdog
monitor does, and turns its events into :class:`RawEvent` values. Only the public,
documented API is used: ``Observer``, ``schedule``/``unschedule``, ``stop``/``join``,
and the event objects' ``event_type``, ``src_path``, ``dest_path`` and
``is_directory``.

On Linux it is the inotify observer, one emitter thread and one descriptor per
folder; it is used there only when asked for by name (``HOTMOD_WATCHER=watchdog``),
which is how the tests run this code path on a Linux machine.

What the native APIs do not give, the watcher does without: no close-after-write
(FSEvents and kqueue have none), and no single ordered queue to put a barrier in, so
every burst is cut after ``quiet`` seconds without events, as under polling; a file
whose events were coalesced is caught by the debouncer's look at its signature.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from watchdog.events import (
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
from watchdog.observers import Observer

if TYPE_CHECKING:
    from watchdog.observers.api import ObservedWatch

from ._watch_backend import RawEvent, RawKind

__all__ = ["WatchdogBackend"]

#: watchdog's event types (``FileSystemEvent.event_type``) and what they mean here.
#: Opened and closed-without-write say nothing about content; a folder's own
#: "modified" is its listing changing, which its entries' events tell already; a
#: close after writing is a change like any other, as there is no ordered queue to
#: lean on (see the module's docstring).
_KINDS = {
    "created": RawKind.CREATED,
    "modified": RawKind.MODIFIED,
    "closed": RawKind.MODIFIED,
    "attrib": RawKind.ATTRIB,
    "deleted": RawKind.DELETED,
    "events_lost": RawKind.OVERFLOW,
}


#: What each watch asks for: where the observer passes it to the kernel (inotify's
#: mask), opening and reading files (every import, every template read) queue nothing.
_WANTED: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class _Forward(FileSystemEventHandler):
    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        is_dir = event.is_directory
        if event.event_type == "moved":
            self._sink(RawEvent(RawKind.DELETED, src, is_dir))
            self._sink(RawEvent(RawKind.MOVED_IN, os.fsdecode(event.dest_path), is_dir))
            return
        kind = _KINDS.get(event.event_type)
        if kind is None or (is_dir and kind in (RawKind.MODIFIED, RawKind.ATTRIB)):
            return
        self._sink(RawEvent(kind, "" if kind is RawKind.OVERFLOW else src, is_dir))


class WatchdogBackend:
    """watchdog's native observer behind the watcher's backend interface."""

    name = "watchdog"
    reports_close = False
    scans = False

    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        self._handler = _Forward(sink)
        self._observer = Observer()
        self._observer.name = "hotmod-watch-watchdog"
        # Folder -> its watch; owned by _lock, never held while calling the observer.
        self._lock = threading.Lock()
        self._watches: dict[str, ObservedWatch] = {}

    def start(self) -> None:
        self._observer.start()

    def schedule(self, folder: str) -> bool:
        with self._lock:
            if folder in self._watches:
                return True
        if not os.path.isdir(folder):
            return False  # vanished meanwhile (the observers differ in how they say so)
        try:
            watch = self._observer.schedule(self._handler, folder, recursive=False, event_filter=_WANTED)
        except (FileNotFoundError, NotADirectoryError):
            return False
        with self._lock:
            self._watches[folder] = watch
        return True

    def unschedule(self, folder: str) -> None:
        with self._lock:
            watch = self._watches.pop(folder, None)
        if watch is not None:
            try:
                self._observer.unschedule(watch)
            except KeyError:  # the observer dropped it already (its folder is gone)
                pass

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        # No single ordered queue to place a barrier in; reports_close is False, so
        # the watcher waits for quiet instead and never asks.
        return False

    def stop(self, timeout: float) -> list[threading.Thread]:
        with self._lock:
            self._watches.clear()
        if self._observer.ident is None:
            return []  # never started: no thread, and no emitter was started either
        self._observer.stop()  # unschedules every watch, stops and joins the emitters
        if self._observer is not threading.current_thread():
            self._observer.join(timeout)
        return [self._observer] if self._observer.is_alive() else []

    def abandon(self) -> None:
        # In a forked child: the observer's threads do not exist here, and watchdog's
        # public API has no way to close an emitter's handle without its thread. On
        # macOS and the BSDs there is nothing to close (FSEvents has no descriptor, a
        # kqueue is not inherited by fork()); on Linux this backend is used only when
        # asked for by name, and its inherited descriptors stay open in the child.
        self._observer = Observer()
        self._lock = threading.Lock()  # the parent's threads may have held the old one
        self._watches = {}
