"""``_fork``: the fork counter and the one registry of objects that care about
``fork()``, proven with a real fork."""

from __future__ import annotations

import gc
import os

from support import child_report

from hotmod.reloader._fork import forget_fork, fork_epoch, on_fork


class Logged:
    """Writes each fork call it gets to a shared list (the parent's, or the child's
    pipe)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def before(self) -> None:
        self.log.append(f"{self.name}:before")

    def parent(self) -> None:
        self.log.append(f"{self.name}:parent")

    def child(self) -> None:
        self.log.append(f"{self.name}:child:epoch+{fork_epoch() - EPOCH_AT_FORK[0]}")


EPOCH_AT_FORK = [0]


def register(obj: Logged) -> None:
    on_fork(obj, before=Logged.before, after_in_parent=Logged.parent, after_in_child=Logged.child)


def test_fork_calls_before_newest_first_and_after_in_registration_order_with_the_epoch_bumped() -> None:
    log: list[str] = []
    first, second = Logged("first", log), Logged("second", log)
    register(first)
    register(second)
    try:
        EPOCH_AT_FORK[0] = fork_epoch()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it saw, and leave at once
            try:
                os.write(write_end, ("\n".join(log) + "\n").encode())
            finally:
                os._exit(0)
        words = child_report(pid, read_end, write_end)
    finally:
        forget_fork(first)
        forget_fork(second)
    assert log == ["second:before", "first:before", "first:parent", "second:parent"]
    assert words == ["second:before", "first:before", "first:child:epoch+1", "second:child:epoch+1"]


def test_a_registration_holds_its_object_weakly_and_forget_fork_drops_it() -> None:
    log: list[str] = []
    kept, dropped, collected = Logged("kept", log), Logged("dropped", log), Logged("collected", log)
    register(kept)
    register(dropped)
    register(collected)
    forget_fork(dropped)
    del collected
    gc.collect()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        forget_fork(kept)
    assert log == ["kept:before", "kept:parent"]
