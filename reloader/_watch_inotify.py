"""The inotify backend: one inotify descriptor and one reader thread for the whole tree.

Built on watchdog's ``InotifyFD`` (the descriptor with its reader thread), not on
its observer, which runs one emitter thread per watched folder: 115 threads for a
5,000-module tree in 112 folders. Here each folder is one watch on the same
descriptor, and every event goes through one thread.

The kernel mask asks only for what a save can be made of: created, modified,
attribute change, closed-after-write, deleted, moved from and to. Never opened,
accessed nor closed-without-write: every ``import`` and every template read would
put an event in the kernel queue, and a busy server would overflow it and miss edits.

Moves are not paired: a file moved out of a watched folder is reported as deleted,
one moved in as ``moved_in`` (its content is complete, whether it came from a
temporary file next to it or from an unwatched folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterable

from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)

from ._watch_backend import RawEvent

__all__ = ["MASK", "InotifyBackend"]

_C = InotifyConstants

#: The kernel mask of every watch. IN_ATTRIB tells a ``touch`` apart from a write
#: still in flight, and carries the barrier of :meth:`InotifyBackend.sync`.
MASK = Mask(
    _C.IN_CREATE
    | _C.IN_MODIFY
    | _C.IN_ATTRIB
    | _C.IN_CLOSE_WRITE
    | _C.IN_DELETE
    | _C.IN_MOVED_FROM
    | _C.IN_MOVED_TO
    | _C.IN_ONLYDIR  # a folder replaced by a file meanwhile is not watched
    | _C.IN_DONT_FOLLOW
    | _C.IN_EXCL_UNLINK  # nothing more about a file once it is deleted
)

_FILE_KINDS = (
    (_C.IN_CLOSE_WRITE, "closed"),
    (_C.IN_MODIFY, "modified"),
    (_C.IN_CREATE, "created"),
    (_C.IN_MOVED_TO, "moved_in"),
    (_C.IN_DELETE | _C.IN_MOVED_FROM, "deleted"),
    (_C.IN_ATTRIB, "attrib"),
)
_DIR_KINDS = (
    (_C.IN_CREATE, "created"),
    (_C.IN_MOVED_TO, "moved_in"),
    (_C.IN_DELETE | _C.IN_MOVED_FROM, "deleted"),
)

_CALLBACK = CallbackId(0)  # one callback per watch: this backend


class InotifyBackend:
    """One inotify descriptor behind the watcher's backend interface."""

    name = "inotify"
    reports_close = True

    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        self._sink = sink
        # Opens the descriptor: EMFILE (the instance limit) surfaces here.
        self._fd = InotifyFD()
        self._fd.name = "hotmod-watch-inotify"
        # Folder <-> watch descriptor, the barrier awaited (per folder) and the
        # folders whose barrier came back too late to be awaited any more; owned by
        # _lock, never held while calling the sink or the descriptor.
        self._lock = threading.Lock()
        self._wd_of: dict[str, WatchDescriptor] = {}
        self._folder_of: dict[WatchDescriptor, str] = {}
        self._awaited: dict[str, threading.Event] = {}
        self._late: set[str] = set()
        # One barrier on its way at a time: an arrival then answers exactly one sync().
        self._sync_lock = threading.Lock()

    def start(self) -> None:
        self._fd.start()

    def schedule(self, folder: str) -> bool:
        with self._lock:
            if folder in self._wd_of:
                return True
        try:
            wd = self._fd.add_callback(os.fsencode(folder), MASK, self, _CALLBACK)
        except (FileNotFoundError, NotADirectoryError):  # vanished meanwhile
            return False
        if wd < 0:
            # InotifyFD passes EACCES over silently and records a watch of -1.
            self._fd.remove_callbacks([(wd, _CALLBACK)])
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), folder)
        with self._lock:
            self._wd_of[folder] = wd
            self._folder_of[wd] = folder
        return True

    def unschedule(self, folder: str) -> None:
        with self._lock:
            wd = self._wd_of.pop(folder, None)
            if wd is not None and self._folder_of.get(wd) == folder:
                del self._folder_of[wd]
            self._late.discard(folder)
        if wd is not None:
            self._fd.remove_callbacks([(wd, _CALLBACK)])

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        """Return once every event that happened before the call has reached the sink.

        One descriptor has one queue, in order, for all its watches: an attribute
        change of one watched folder, made now, arrives after every earlier event of
        the whole tree. The folder's times are set to what they already are (only
        its ctime moves). The first of ``folders`` that takes it carries the barrier.
        A barrier that does not come back within ``timeout`` leaves its folder out of
        later barriers until it arrives, so that it never answers a later call.
        """
        with self._sync_lock:
            for folder in folders:
                passed = threading.Event()
                with self._lock:
                    if folder not in self._wd_of or folder in self._late:
                        continue
                    self._awaited[folder] = passed
                try:
                    st = os.stat(folder)
                    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
                except OSError:  # gone, or not ours to touch: try the next one
                    with self._lock:
                        self._awaited.pop(folder, None)
                    continue
                if passed.wait(max(0.0, timeout)):
                    return True
                with self._lock:
                    if self._awaited.pop(folder, None) is passed:
                        self._late.add(folder)
                return False
            return False

    # --- the reader thread (watchdog's InotifyFD calls these) ---------------------------

    def on_event(self, event: InotifyEvent) -> None:
        with self._lock:
            folder = self._folder_of.get(event.wd)
        if folder is None:
            return  # a watch removed meanwhile
        if not event.name:  # the watched folder itself
            if event.is_attrib:
                self._barrier_passed(folder)
            return
        path = os.path.join(folder, os.fsdecode(event.name))
        is_dir = bool(event.mask & _C.IN_ISDIR)
        for bits, kind in _DIR_KINDS if is_dir else _FILE_KINDS:
            if event.mask & bits:
                self._sink(RawEvent(kind, path, is_dir))
                return

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        # The folder was deleted or moved away; its parent's watch reports that.
        with self._lock:
            folder = self._folder_of.pop(wd, None)
            if folder is not None and self._wd_of.get(folder) == wd:
                del self._wd_of[folder]

    def on_queue_overflow(self) -> None:
        self._sink(RawEvent("overflow", ""))

    def _barrier_passed(self, folder: str) -> None:
        with self._lock:
            passed = self._awaited.pop(folder, None)
            if passed is None:
                self._late.discard(folder)
        if passed is not None:
            passed.set()

    # --- lifecycle -------------------------------------------------------------------

    def stop(self, timeout: float) -> list[threading.Thread]:
        with self._lock:
            awaited, self._awaited = self._awaited, {}
        for passed in awaited.values():  # nothing will come back now
            passed.set()
        if self._fd.ident is not None:
            self._fd.stop()  # removes every watch, wakes the reader, which closes the fd
            if self._fd is not threading.current_thread():
                self._fd.join(timeout)
        else:
            self._fd.close()  # never started: closes the descriptor at once
        with self._lock:
            self._wd_of.clear()
            self._folder_of.clear()
        return [self._fd] if self._fd.is_alive() else []

    def abandon(self) -> None:
        # In a forked child: the reader thread does not exist here and the
        # descriptor's lock may be held forever, so nothing of it is called; only the
        # descriptors the child inherited are closed, or the kernel would keep the
        # parent's watches alive in every worker. Private names of watchdog's
        # InotifyFD, looked up defensively: a version that renamed them leaks
        # descriptors, nothing worse.
        for name in ("_inotify_fd", "_kill_r", "_kill_w"):
            fd = getattr(self._fd, name, None)
            if isinstance(fd, int) and not isinstance(fd, bool):
                with contextlib.suppress(OSError):
                    os.close(fd)

