"""The fork counter: one number that changes in a child process after every ``fork()``.

Threads, locks held by other threads and inotify descriptors do not survive a fork
as they were. Whoever keeps such things saves :func:`fork_epoch` when it starts and
compares it later: a difference means this process is a fork of the one that saved
it. One global read, cheap enough for every request.

The counter is bumped by an ``os.register_at_fork`` hook registered when this module
is first imported, that is before any other hotmod module registers its own
(they import this one first); child hooks run in registration order, so every other
hook already sees the new number.
"""

from __future__ import annotations

import os

__all__ = ["fork_epoch"]

# Written only by the at-fork hook, in the child, while it has one thread.
_epoch = 0


def fork_epoch() -> int:
    """A number that changes in a child process after every ``fork()``."""
    return _epoch


def _bump() -> None:
    global _epoch
    _epoch += 1


os.register_at_fork(after_in_child=_bump)
