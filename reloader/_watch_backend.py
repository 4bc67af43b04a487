"""The one small interface behind which each watching backend sits.

A backend watches folders one by one (never their sub-folders: the watcher
schedules those itself) and reports what happens in them as :class:`RawEvent`
values to a sink, on a thread of its own. Three backends, one module each, picked by
name from :data:`BACKENDS` and imported on first use (so polling never imports
watchdog):

- ``inotify`` (:mod:`._watch_inotify`): Linux; one descriptor and one reader thread
  for the whole tree, on the kernel's interface (:mod:`._inotify`).
- ``watchdog`` (:mod:`._watch_watchdog`): watchdog's public observer, that is the
  platform's native API: FSEvents on macOS, kqueue on the BSDs,
  ``ReadDirectoryChangesW`` on Windows (and inotify on Linux, where it is chosen only
  when asked for by name).
- ``polling`` (:mod:`._watch_polling`): stat scans, everywhere, and the fallback.
"""

from __future__ import annotations

import enum
import importlib
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple, Protocol

__all__ = ["BACKENDS", "Backend", "BackendName", "RawEvent", "RawKind", "backend_class", "native_backend"]

BackendName = Literal["inotify", "watchdog", "polling"]


class RawKind(enum.StrEnum):
    """What a backend saw happen to a path."""

    CREATED = "created"
    MODIFIED = "modified"
    #: Closed after writing (inotify only): the content is complete.
    CLOSED = "closed"
    #: Metadata only (``touch``, ``chmod``).
    ATTRIB = "attrib"
    #: Deleted, or moved away.
    DELETED = "deleted"
    #: Renamed or moved into the folder: its content is complete.
    MOVED_IN = "moved_in"
    #: Events were lost (the kernel's queue overflowed); ``path`` is empty.
    OVERFLOW = "overflow"


class RawEvent(NamedTuple):
    """One file-system event as a backend reports it."""

    kind: RawKind
    path: str
    is_dir: bool = False


class Backend(Protocol):
    """What the watcher needs from a backend; each method is thread-safe."""

    name: BackendName
    #: Whether the backend reports close-after-write events in one ordered queue,
    #: so that :meth:`sync` can place a barrier behind them (inotify does).
    reports_close: bool
    #: Whether changes are seen only when a scan comes round (polling), rather than
    #: reported as they happen.
    scans: bool

    def start(self) -> None: ...

    def schedule(self, folder: str) -> bool:
        """Watch ``folder`` (not its sub-folders). False if it vanished meanwhile.

        Raises :class:`OSError` with ``ENOSPC``/``EMFILE`` when a kernel limit is hit.
        """

    def unschedule(self, folder: str) -> None: ...

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        """Return once every event that happened before the call has reached the
        sink. ``folders`` are watched folders where a barrier may be placed, in order
        of preference. False if that could not be made sure (no barrier possible, or
        it did not come back within ``timeout``)."""

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Stop and join; returns the threads still alive after ``timeout``."""

    def abandon(self) -> None:
        """In a forked child: drop the parent's threads, close inherited descriptors."""


#: Backends by name, imported on first use.
BACKENDS: dict[BackendName, str] = {
    "inotify": "._watch_inotify:InotifyBackend",
    "watchdog": "._watch_watchdog:WatchdogBackend",
    "polling": "._watch_polling:PollingBackend",
}


def native_backend() -> BackendName:
    """The event-driven backend of this platform: our own inotify on Linux, watchdog's
    native observer elsewhere."""
    return "inotify" if sys.platform.startswith("linux") else "watchdog"


def backend_class(name: BackendName) -> Callable[..., Backend]:
    """The class of the backend called ``name``; importing it may raise ImportError."""
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name, __package__), class_name)  # type: ignore[no-any-return]
