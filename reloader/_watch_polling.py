"""The polling backend: one thread that lists the watched folders and compares stats.

For the places inotify does not reach (Docker bind mounts on macOS, NFS, a full
``fs.inotify.max_user_watches``). One thread scans every watched folder (not its
sub-folders: the watcher schedules those one by one, as for inotify) every
``interval`` seconds and compares each relevant file's (inode, size, mtime) with the
previous scan. One thread for the whole tree, rather than one per folder.

A folder where something changed is looked at again ``recheck`` seconds later, so
that a file still being written shows a second change and keeps the watcher's burst
open. That is the best polling can do: it sees no close-after-write event, and a
write that starts and stops between two looks is invisible.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable

from ._signature import Signature, signature_of
from ._watch_backend import RawEvent, RawKind

__all__ = ["PollingBackend"]

# What a folder looked like: name -> (is_dir, signature; a folder's is (0, 0, inode)),
# or None for a file that is not relevant (remembered so that its name is judged once).
_Entry = tuple[bool, Signature] | None
_Snapshot = dict[str, _Entry]


class PollingBackend:
    """Stat polling behind the watcher's backend interface."""

    name = "polling"
    reports_close = False
    scans = True

    def __init__(
        self,
        sink: Callable[[RawEvent], None],
        *,
        interval: float,
        recheck: float,
        relevant: Callable[[str], bool],
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._recheck = recheck
        self._relevant = relevant
        # Folder -> its last snapshot; owned by _lock, never held while calling the sink.
        self._lock = threading.Lock()
        self._folders: dict[str, _Snapshot] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotmod-watch-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, folder: str) -> bool:
        with self._lock:
            if folder in self._folders:
                return True
            previous = None
        snapshot = self._look(folder, previous)
        if snapshot is None:
            return False
        with self._lock:
            self._folders.setdefault(folder, snapshot)
        return True

    def unschedule(self, folder: str) -> None:
        with self._lock:
            self._folders.pop(folder, None)

    def stop(self, timeout: float) -> list[threading.Thread]:
        self._stopped.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            self._folders.clear()
        return [self._thread] if self._thread.is_alive() else []

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        # A scan hands its events over before it ends: nothing is ever in flight.
        return True

    def abandon(self) -> None:
        # In a forked child the thread does not exist and there is no descriptor.
        pass

    # --- the polling thread --------------------------------------------------------------

    def _run(self) -> None:
        next_full = time.monotonic() + self._interval
        again: set[str] = set()
        again_at = 0.0
        while True:
            now = time.monotonic()
            if again and now >= again_at:
                folders, again = sorted(again), set()
            elif now >= next_full:
                with self._lock:
                    folders = list(self._folders)
                next_full = now + self._interval
            else:
                wake = min(next_full, again_at) if again else next_full
                if self._stopped.wait(wake - now):
                    return
                continue
            for folder in folders:
                if self._stopped.is_set():
                    return
                if self._scan(folder):
                    again.add(folder)
            if again:
                again_at = time.monotonic() + self._recheck

    def _scan(self, folder: str) -> bool:
        """Compare ``folder`` with its last snapshot, report the differences; True if any."""
        with self._lock:
            previous = self._folders.get(folder)
        if previous is None:
            return False  # unscheduled meanwhile
        current = self._look(folder, previous)
        events: list[RawEvent] = []
        if current is None:
            # The folder itself vanished: everything in it went with it.
            events += [
                RawEvent(RawKind.DELETED, os.path.join(folder, n), is_dir=e[0])
                for n, e in previous.items()
                if e is not None
            ]
            events.append(RawEvent(RawKind.DELETED, folder, is_dir=True))
        else:
            for name, entry in current.items():
                if entry is None:
                    continue
                old = previous.get(name)
                path = os.path.join(folder, name)
                if old is None:
                    events.append(RawEvent(RawKind.CREATED, path, is_dir=entry[0]))
                elif old[0] != entry[0]:
                    events.append(RawEvent(RawKind.DELETED, path, is_dir=old[0]))
                    events.append(RawEvent(RawKind.CREATED, path, is_dir=entry[0]))
                elif not entry[0] and old != entry:
                    events.append(RawEvent(RawKind.MODIFIED, path))
            for name, old in previous.items():
                if old is not None and name not in current:
                    events.append(RawEvent(RawKind.DELETED, os.path.join(folder, name), is_dir=old[0]))
        with self._lock:
            if folder in self._folders:
                if current is None:
                    del self._folders[folder]
                else:
                    self._folders[folder] = current
        for event in events:
            self._sink(event)
        return bool(events)

    def _look(self, folder: str, previous: _Snapshot | None) -> _Snapshot | None:
        """The folder's snapshot now; None if it is gone."""
        snapshot: _Snapshot = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            snapshot[name] = (True, (0, 0, entry.inode()))
                            continue
                        known = previous.get(name, False) if previous is not None else False
                        if known is None or (known is False and not self._relevant(entry.path)):
                            snapshot[name] = None
                            continue
                        st = entry.stat()
                    except OSError:
                        continue  # vanished between listing and stat
                    if stat.S_ISREG(st.st_mode):
                        snapshot[name] = (False, signature_of(st))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return previous or {}
        return snapshot
