"""The inotify backend: one inotify descriptor and one reader thread for the whole tree.

watchdog's observer runs one emitter thread and one descriptor per watched folder:
115 threads for a 5,000-module tree in 112 folders. Here each folder is one watch on
the same descriptor (:class:`._inotify.Inotify`, the kernel's interface), and every
event goes through one thread, which sleeps in ``poll()`` on the descriptor and on a
wake-up pipe that :meth:`InotifyBackend.stop` writes to.

The kernel mask asks only for what a save can be made of: created, modified,
attribute change, closed-after-write, deleted, moved from and to. Never opened,
accessed nor closed-without-write: every ``import`` and every template read would
put an event in the kernel queue, and a busy server would overflow it and miss edits.

Moves are not paired: a file moved out of a watched folder is reported as deleted,
one moved in as ``moved_in`` (its content is complete, whether it came from a
temporary file next to it or from an unwatched folder).

Descriptors: the inotify descriptor and both ends of the pipe are close-on-exec and
owned by the reader thread once it runs (it closes them as it ends, so a ``stop()``
that timed out never closes a descriptor under a thread still reading it); in a
forked child, :meth:`InotifyBackend.abandon` closes the inherited ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable, Iterable

from ._inotify import Flag, Inotify, InotifyEvent
from ._watch_backend import RawEvent, RawKind

__all__ = ["MASK", "InotifyBackend"]

logger = logging.getLogger("hotmod.watcher")

#: The kernel mask of every watch. ATTRIB tells a ``touch`` apart from a write
#: still in flight, and carries the barrier of :meth:`InotifyBackend.sync`.
MASK = (
    Flag.CREATE
    | Flag.MODIFY
    | Flag.ATTRIB
    | Flag.CLOSE_WRITE
    | Flag.DELETE
    | Flag.MOVED_FROM
    | Flag.MOVED_TO
    | Flag.ONLYDIR  # a folder replaced by a file meanwhile is not watched
    | Flag.DONT_FOLLOW
    | Flag.EXCL_UNLINK  # nothing more about a file once it is deleted
)

_FILE_KINDS = (
    (Flag.CLOSE_WRITE, RawKind.CLOSED),
    (Flag.MODIFY, RawKind.MODIFIED),
    (Flag.CREATE, RawKind.CREATED),
    (Flag.MOVED_TO, RawKind.MOVED_IN),
    (Flag.DELETE | Flag.MOVED_FROM, RawKind.DELETED),
    (Flag.ATTRIB, RawKind.ATTRIB),
)
_DIR_KINDS = (
    (Flag.CREATE, RawKind.CREATED),
    (Flag.MOVED_TO, RawKind.MOVED_IN),
    (Flag.DELETE | Flag.MOVED_FROM, RawKind.DELETED),
)


class InotifyBackend:
    """One inotify descriptor behind the watcher's backend interface."""

    name = "inotify"
    reports_close = True
    scans = False

    def __init__(self, sink: Callable[[RawEvent], None]) -> None:
        self._sink = sink
        # Opens the descriptor: EMFILE (the instance limit) surfaces here.
        self._inotify = Inotify()
        try:
            self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except BaseException:
            self._inotify.close()
            raise
        self._reader = threading.Thread(target=self._read_loop, name="hotmod-watch-inotify", daemon=True)
        # Whether the descriptors are closed; owned by _fd_lock, which the reader
        # holds while closing them and stop() while writing to the pipe, so that a
        # byte never goes to a descriptor number the process has reused since.
        self._fd_lock = threading.Lock()
        self._fds_closed = False
        # Folder <-> watch descriptor, the barrier awaited (per folder) and the
        # folders whose barrier came back too late to be awaited any more; owned by
        # _lock, never held while calling the sink or the kernel.
        self._lock = threading.Lock()
        self._wd_of: dict[str, int] = {}
        self._folder_of: dict[int, str] = {}
        self._awaited: dict[str, threading.Event] = {}
        self._late: set[str] = set()
        # One barrier on its way at a time: an arrival then answers exactly one sync().
        self._sync_lock = threading.Lock()

    def start(self) -> None:
        self._reader.start()

    def schedule(self, folder: str) -> bool:
        with self._lock:
            if folder in self._wd_of:
                return True
        try:
            wd = self._inotify.add_watch(folder, MASK)
        except (FileNotFoundError, NotADirectoryError):  # vanished, or a file now
            return False
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
            with self._fd_lock:
                if not self._fds_closed:
                    self._inotify.rm_watch(wd)

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

    # --- the reader thread ---------------------------------------------------------------

    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._inotify.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._wake_r in ready:
                    return
                for event in self._inotify.read():
                    try:
                        self._on_event(event)
                    except Exception:  # one bad event must not end the watch
                        logger.exception("inotify backend failed to handle %r", event)
        except Exception:
            logger.exception("the inotify reader stopped; no more events will come")
        finally:
            self._close_fds()

    def _on_event(self, event: InotifyEvent) -> None:
        if event.mask & Flag.Q_OVERFLOW:
            self._sink(RawEvent(RawKind.OVERFLOW, ""))
            return
        if event.mask & Flag.IGNORED:
            # The watch is gone: its folder was deleted or moved away (the parent's
            # watch reports that), or it was removed by unschedule().
            self._watch_gone(event.wd)
            return
        with self._lock:
            folder = self._folder_of.get(event.wd)
        if folder is None:
            return  # a watch removed meanwhile
        if not event.name:  # the watched folder itself
            if event.mask & Flag.ATTRIB:
                self._barrier_passed(folder)
            return
        path = os.path.join(folder, os.fsdecode(event.name))
        is_dir = bool(event.mask & Flag.ISDIR)
        for bits, kind in _DIR_KINDS if is_dir else _FILE_KINDS:
            if event.mask & bits:
                self._sink(RawEvent(kind, path, is_dir))
                return

    def _watch_gone(self, wd: int) -> None:
        with self._lock:
            folder = self._folder_of.pop(wd, None)
            if folder is not None and self._wd_of.get(folder) == wd:
                del self._wd_of[folder]

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
        if self._reader.ident is None:
            self._close_fds()  # never started: nobody else holds them
        else:
            with self._fd_lock:
                if not self._fds_closed:
                    with contextlib.suppress(BlockingIOError):  # a byte is already there
                        os.write(self._wake_w, b"x")
            if self._reader is not threading.current_thread():
                self._reader.join(timeout)
        with self._lock:
            self._wd_of.clear()
            self._folder_of.clear()
        return [self._reader] if self._reader.is_alive() else []

    def _close_fds(self) -> None:
        with self._fd_lock:
            if self._fds_closed:
                return
            self._fds_closed = True
            self._inotify.close()  # drops every watch with it
            os.close(self._wake_r)
            os.close(self._wake_w)

    def abandon(self) -> None:
        # In a forked child: the reader thread does not exist here and _fd_lock may
        # be held forever by the parent's, so no lock is taken; the descriptors the
        # child inherited are closed, or the kernel would keep the parent's watches
        # alive in every worker.
        if self._fds_closed:
            return
        self._fds_closed = True
        with contextlib.suppress(OSError):
            self._inotify.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
