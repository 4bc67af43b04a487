"""The kernel's inotify interface, and nothing more: three system calls and a parser.

Ours, not watchdog's: watchdog's public API is its observer, one emitter thread and
one descriptor per watched folder; the one-descriptor class under it
(``watchdog.observers.inotify_c.InotifyFD``) is private, and watchdog 7.1.1 reworked
it in a patch release (a dispatcher thread, a kill pipe, descriptors left open after
``stop()``). The interface below is the kernel's (``inotify(7)``), stable for twenty
years, reached through :mod:`ctypes` on the C library the interpreter already runs on.

Importing this module raises :class:`ImportError` where the C library has no
inotify (macOS, Windows, the BSDs): the watcher then picks another backend.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import os
import struct
from typing import NamedTuple

__all__ = ["Flag", "Inotify", "InotifyEvent"]

# The symbols of the process itself: the C library the interpreter is linked with
# (glibc or musl), whatever its file name. use_errno: each call's errno is kept.
_libc = ctypes.CDLL(None, use_errno=True)
try:
    _init1 = _libc.inotify_init1
    _add_watch = _libc.inotify_add_watch
    _rm_watch = _libc.inotify_rm_watch
except AttributeError as exc:  # not Linux: no inotify in this C library
    raise ImportError(f"this platform's C library has no inotify ({exc})") from None
_init1.argtypes = [ctypes.c_int]
_init1.restype = ctypes.c_int
_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_add_watch.restype = ctypes.c_int
_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_rm_watch.restype = ctypes.c_int


class Flag(enum.IntFlag):
    """The bits of an inotify mask (``<sys/inotify.h>``)."""

    ACCESS = 0x00000001
    MODIFY = 0x00000002
    ATTRIB = 0x00000004
    CLOSE_WRITE = 0x00000008
    CLOSE_NOWRITE = 0x00000010
    OPEN = 0x00000020
    MOVED_FROM = 0x00000040
    MOVED_TO = 0x00000080
    CREATE = 0x00000100
    DELETE = 0x00000200
    DELETE_SELF = 0x00000400
    MOVE_SELF = 0x00000800
    UNMOUNT = 0x00002000
    Q_OVERFLOW = 0x00004000
    IGNORED = 0x00008000
    ONLYDIR = 0x01000000
    DONT_FOLLOW = 0x02000000
    EXCL_UNLINK = 0x04000000
    ISDIR = 0x40000000


#: ``struct inotify_event``: wd, mask, cookie, len, then ``len`` bytes of name.
_HEADER = struct.Struct("iIII")
#: Enough for hundreds of events per read; the kernel never splits one event.
_READ_SIZE = 64 * 1024


class InotifyEvent(NamedTuple):
    """One event as the kernel reports it. ``name`` is empty for the watched folder
    itself (and for ``Q_OVERFLOW``, whose ``wd`` is -1)."""

    wd: int
    mask: int
    name: bytes


class Inotify:
    """One inotify descriptor, opened non-blocking and close-on-exec.

    Not thread-safe by itself: the backend calls :meth:`add_watch` and
    :meth:`rm_watch` from any thread (the kernel serialises them) and :meth:`read`
    from its reader thread only, and closes it once nothing else can use it.
    """

    def __init__(self) -> None:
        fd = _init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int | None = fd

    def fileno(self) -> int:
        if self.fd is None:
            raise ValueError("the inotify descriptor is closed")
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        """Watch ``path`` with ``mask``; the watch descriptor. The same folder (inode)
        gets the same descriptor again. Raises :class:`OSError` with the kernel's
        errno: ``ENOENT``/``ENOTDIR`` (vanished, or no longer a folder with
        ``ONLYDIR``), ``EACCES``, ``ENOSPC`` (``max_user_watches`` reached)."""
        wd = _add_watch(self.fileno(), os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        """Remove a watch; one the kernel already dropped (its folder is gone) is fine."""
        if _rm_watch(self.fileno(), wd) < 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # no such watch any more
                raise OSError(err, os.strerror(err))

    def read(self) -> list[InotifyEvent]:
        """Every event queued now, in the kernel's order; empty when there is none."""
        events: list[InotifyEvent] = []
        fd = self.fileno()
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return events
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                events.append(InotifyEvent(wd, mask, name))
            if len(data) < _READ_SIZE - 4096:
                return events  # the queue is drained: save the next read's EAGAIN

    def close(self) -> None:
        """Close the descriptor (the kernel drops every watch with it). Idempotent."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
