"""What happens at ``fork()``: one counter, and one registry of the objects that care.

Threads, locks held by other threads and inotify descriptors do not survive a fork
as they were. Two tools, both cheap:

* :func:`fork_epoch`: a number that changes in a child process after every
  ``fork()``. Whoever keeps such things saves it when it starts and compares it
  later: a difference means this process is a fork of the one that saved it. One
  global read, cheap enough for every request.
* :func:`on_fork`: an object registers the calls it needs around a fork::

      on_fork(self, before=Reloader._before_fork,
              after_in_parent=Reloader._after_fork_in_parent,
              after_in_child=Reloader._after_fork_in_child)

  Each call gets the object as its one argument. The object is held weakly: a
  registration never keeps it alive, and one that was collected is dropped. Calls
  run as ``os.register_at_fork`` runs its own: *before* hooks in reverse
  registration order (the newest object first), *after* hooks in registration order,
  so an object registered after another that it uses is set up after it in the child.
  A hook that raises is logged and the others still run. :func:`forget_fork`
  drops a registration (``close()``).

This module registers the one ``os.register_at_fork`` hook that runs them when it
is first imported; the child's hook bumps the counter first, so every registered
call already sees the new number.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

__all__ = ["forget_fork", "fork_epoch", "on_fork"]

log = logging.getLogger("hotmod")

T = TypeVar("T")
Hook = Callable[[Any], None]

# Written only by the at-fork hook, in the child, while it has one thread.
_epoch = 0



class _Entry(NamedTuple):
    owner: weakref.ref[Any]
    before: Hook | None
    after_in_parent: Hook | None
    after_in_child: Hook | None


# In registration order. Replaced whole under _lock, never changed in place: the
# at-fork hooks read it without a lock (the forking thread must not wait on a lock
# another thread could hold at fork time).
_entries: tuple[_Entry, ...] = ()
_lock = threading.Lock()  # serializes writers of _entries; replaced in the child


def fork_epoch() -> int:
    """A number that changes in a child process after every ``fork()``."""
    return _epoch


def on_fork(
    owner: T,
    *,
    before: Callable[[T], None] | None = None,
    after_in_parent: Callable[[T], None] | None = None,
    after_in_child: Callable[[T], None] | None = None,
) -> None:
    """Call ``before(owner)`` in the forking thread just before every ``fork()``, then
    ``after_in_parent(owner)`` in the parent or ``after_in_child(owner)`` in the child,
    for as long as ``owner`` lives (held weakly) or until :func:`forget_fork`."""
    global _entries
    entry = _Entry(weakref.ref(owner), before, after_in_parent, after_in_child)
    with _lock:
        _entries = (*(e for e in _entries if e.owner() is not None), entry)


def forget_fork(owner: object) -> None:
    """Drop ``owner``'s registrations (nothing happens if it has none)."""
    global _entries
    with _lock:
        _entries = tuple(e for e in _entries if e.owner() not in (None, owner))


def _run(entries: Iterable[_Entry], which: Callable[[_Entry], Hook | None]) -> None:
    for entry in entries:
        owner, hook = entry.owner(), which(entry)
        if owner is None or hook is None:
            continue
        try:
            hook(owner)
        except Exception:
            log.exception("hotmod fork hook %r of %r raised", hook, owner)


def _before() -> None:
    _run(reversed(_entries), lambda e: e.before)


def _after_in_parent() -> None:
    _run(_entries, lambda e: e.after_in_parent)


def _after_in_child() -> None:
    global _epoch, _lock
    _epoch += 1
    # Another thread may have held it at fork time: in the child it would stay held.
    _lock = threading.Lock()
    _run(_entries, lambda e: e.after_in_child)


os.register_at_fork(before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child)
