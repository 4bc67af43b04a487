"""The one small interface behind which each watching backend sits.

A backend watches folders one by one (never their sub-folders: the watcher
schedules those itself) and reports what happens in them as :class:`RawEvent`
values to a sink, on a thread of its own. Two backends, one module each, picked by
name from :data:`BACKENDS` and imported on first use (so polling never imports
watchdog): inotify (:mod:`._watch_inotify`) and stat polling (:mod:`._watch_polling`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

__all__ = ["BACKENDS", "Backend", "RawEvent", "backend_class"]


class RawEvent(NamedTuple):
    """One file-system event as a backend reports it.

    ``kind`` is ``"created"``, ``"modified"``, ``"closed"`` (closed after writing),
    ``"attrib"`` (metadata only: ``touch``, ``chmod``), ``"deleted"`` (a move away
    counts as a deletion), ``"moved_in"`` (renamed or moved into the folder: its
    content is complete) or ``"overflow"`` (events were lost; ``path`` is empty).
    """

    kind: str
    path: str
    is_dir: bool = False


class Backend(Protocol):
    """What the watcher needs from a backend; each method is thread-safe."""

    name: str
    #: Whether the backend reports close-after-write events.
    reports_close: bool

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
BACKENDS = {
    "inotify": "._watch_inotify:InotifyBackend",
    "polling": "._watch_polling:PollingBackend",
}


def backend_class(name: str) -> Callable[..., Backend]:
    """The class of the backend called ``name``; importing it may raise ImportError."""
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name, __package__), class_name)  # type: ignore[no-any-return]
