"""The lock-free enter/exit protocol of a generation, under real thread contention."""

from __future__ import annotations

import random
import threading
import time
from collections import deque

from hotmod.reloader import Generation


def test_a_generation_counts_requests_and_retires_when_the_last_one_leaves() -> None:
    fired: list[Generation] = []
    gen = Generation(1, {}, on_drained=fired.append)
    gen.make_current()
    assert gen.enter() and gen.enter()
    assert gen.in_flight == 2
    gen.supersede()
    assert gen.state == "draining" and not fired
    gen.exit()
    assert gen.state == "draining" and not fired
    gen.exit()
    assert gen.state == "retired" and fired == [gen]
    assert gen.enter() is False and gen.in_flight == 0


def test_superseding_an_idle_generation_retires_it_at_once() -> None:
    fired: list[Generation] = []
    gen = Generation(1, {}, on_drained=fired.append)
    gen.make_current()
    gen.supersede()
    assert gen.state == "retired" and fired == [gen]


class _YieldingTokens(deque[None]):
    """Token deque that may hand the GIL to another thread around each operation."""

    def append(self, item: None) -> None:
        _maybe_yield()
        super().append(item)
        _maybe_yield()

    def pop(self) -> None:
        _maybe_yield()
        super().pop()
        _maybe_yield()


class _PreemptedGeneration(Generation):
    """A Generation whose every state read and write may switch threads.

    CPython 3.11 switches threads only at calls and backward jumps, so the few
    bytecodes between enter()'s append and its state read hold no switch point and
    a wrong ordering there would never show. Here every step of the protocol can
    be interleaved with every other thread's, as on a free-threaded build."""

    __slots__ = ("_state",)

    @property  # type: ignore[override]
    def state(self) -> str:
        _maybe_yield()
        value = self._state
        _maybe_yield()
        return value

    @state.setter
    def state(self, value: str) -> None:
        _maybe_yield()
        self._state = value
        _maybe_yield()


def _maybe_yield() -> None:
    if random.random() < 0.3:
        time.sleep(0)  # releases the GIL: a switch point, not a wait


def test_no_request_enters_a_retired_generation_and_it_retires_exactly_once() -> None:
    """Six threads enter and leave while the engine supersedes the generation at a
    random moment: a request must never succeed in entering once the generation has
    been reported drained, no request may be inside when that happens, and it
    happens exactly once. Repeated with switches injected at every step."""
    for trial in range(400):
        _race_one_supersede(trial)


def _race_one_supersede(trial: int) -> None:
    violations: list[str] = []
    inside = [False] * 6
    fired: list[int] = []

    def on_drained(gen: Generation) -> None:
        if any(inside):
            violations.append("retired with a request inside")
        fired.append(1)

    gen = _PreemptedGeneration(trial, {}, on_drained=on_drained)
    gen._tokens = _YieldingTokens()
    gen.make_current()
    start = threading.Barrier(7)

    def client(i: int) -> None:
        start.wait()
        # As real requests: a few, then no more (new ones go to the new current
        # generation), so the last exit races the engine's supersede.
        for _ in range(random.randrange(1, 3)):
            if gen.enter():
                if fired:
                    violations.append("entered after retirement")
                inside[i] = True
                _maybe_yield()
                inside[i] = False
                gen.exit()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    start.wait()
    for _ in range(random.randrange(8)):
        _maybe_yield()
    gen.supersede()
    for t in threads:
        t.join(10)
    assert violations == [], f"trial {trial}: {violations[:3]}"
    assert fired == [1], f"trial {trial}: retired {len(fired)} times"
    assert gen.state == "retired" and gen.in_flight == 0
