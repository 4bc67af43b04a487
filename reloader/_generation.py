"""Generations: numbered, immutable sets of module instances and their target."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import Any


class State(enum.StrEnum):
    """A generation's state. A ``str``: ``gen.state == "current"`` holds, and a status
    document shows the plain word."""

    LOADING = "loading"  # being built by a plan; no caller can enter it yet
    CURRENT = "current"  # what new callers enter
    DRAINING = "draining"  # superseded, callers still inside
    RETIRED = "retired"  # drained (or forced): its instances are let go


# The members themselves: ``enter()`` compares by identity, the cheapest test.
LOADING = State.LOADING
CURRENT = State.CURRENT
DRAINING = State.DRAINING
RETIRED = State.RETIRED

_EMPTY: Mapping[str, ModuleType] = MappingProxyType({})


class Generation:
    """One numbered set of module instances and the target resolved from them.

    States go *loading* → *current* → *draining* (superseded, callers still inside) →
    *retired* (drained; its due purge hooks run on the engine's janitor thread).

    ``enter()``/``exit()`` count the callers inside without a lock: each caller
    is a token in a deque, whose ``append`` and ``pop`` are atomic. The protocol
    (reasoned step by step in docs/concurrency.md):

    * ``enter()`` appends its token, *then* reads the state; if it reads *retired* it
      takes its token back, returns False (the caller enters the new current
      generation, see ``Reloader.acquire``) and re-checks retirement, since its
      token may have made a retirement back off.
    * Retiring (``maybe_retire``, the rare path, under ``_lock``) sets *retired*
      first, then looks for tokens; if it finds one it reverts to *draining* and
      looks once more, in case the last token left in between. So a caller that
      read a state other than *retired* always has its token counted by the check,
      and a drained generation is always retired, exactly once.
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "_modules",
        "_on_drained",
        "_tokens",
        "created_at",
        "number",
        "state",
        "superseded_at",
        "target",
    )

    def __init__(
        self,
        number: int,
        modules: dict[str, ModuleType],
        *,
        on_drained: Callable[[Generation], None],
    ) -> None:
        self.number = number
        self._modules: dict[str, ModuleType] | None = modules
        self.target: Any = None
        self.state: State = LOADING  # written under _lock; read anywhere
        self._tokens: deque[None] = deque()  # one per caller inside (atomic ops only)
        self.created_at = time.time()
        self.superseded_at: float | None = None  # time.monotonic()
        self._lock = threading.Lock()  # serializes state changes, never taken by enter()/exit()
        self._on_drained = on_drained

    def __repr__(self) -> str:
        return (
            f"<Generation {self.number} {self.state}, {self.in_flight} in flight,"
            f" {len(self._modules or ())} modules>"
        )

    @property
    def modules(self) -> Mapping[str, ModuleType]:
        """Module name → instance. Empty once retired: a retired generation keeps no
        strong reference to its instances, so that they can be collected."""
        modules = self._modules
        return MappingProxyType(modules) if modules is not None else _EMPTY

    @property
    def in_flight(self) -> int:
        return len(self._tokens)

    def enter(self) -> bool:
        """Count one caller in. False when this generation is already retired."""
        tokens = self._tokens
        tokens.append(None)
        if self.state is not RETIRED:
            return True
        tokens.pop()
        if self.state is DRAINING:  # a retirement backed off because of our token
            self.maybe_retire()
        return False

    def exit(self) -> None:
        """Count one caller out; the last one out of a draining generation retires it."""
        tokens = self._tokens
        try:
            tokens.pop()
        except IndexError:
            # Only a caller that entered before fork() and ends in the child gets
            # here: the child dropped the tokens it inherited (after_fork_in_child).
            return
        if not tokens and self.state is DRAINING:
            self.maybe_retire()

    def maybe_retire(self) -> bool:
        """Retire if draining and drained; True if this call retired it."""
        with self._lock:
            while self.state is DRAINING:
                self.state = RETIRED
                if not self._tokens:
                    break
                self.state = DRAINING
                if self._tokens:
                    # Someone is in: their exit() sees DRAINING and comes back here.
                    return False
            else:
                return False
        self._on_drained(self)
        return True

    # -- engine side -------------------------------------------------------------
    # Called by the engine's reload path and its retirement, never by a caller that
    # only enters and exits.

    @property
    def table(self) -> dict[str, ModuleType] | None:
        """The instances themselves (not a view), None once retired. Written by the
        reload path only: while this generation is built, and when a module loaded
        past the engine joins it (:meth:`adopt`)."""
        return self._modules

    def adopt(self, name: str, module: ModuleType) -> bool:
        """``module`` joins this generation as ``name``; False if the name is taken
        or the generation is retired."""
        modules = self._modules
        if modules is None or name in modules:
            return False
        modules[name] = module
        return True

    def make_current(self) -> None:
        with self._lock:
            self.state = CURRENT

    def supersede(self) -> None:
        """Mark draining; retire (and report it drained) if nothing is in flight."""
        with self._lock:
            self.superseded_at = time.monotonic()
            self.state = DRAINING
        self.maybe_retire()

    def force_retire(self) -> bool:
        """Retire whatever is in flight (shutdown, drain timeout). True if it changed."""
        with self._lock:
            if self.state == RETIRED:
                return False
            self.state = RETIRED
            return True

    def after_fork_in_child(self) -> None:
        """In a forked child: the callers inside belong to the parent's threads,
        which the child does not have, so their tokens would never leave and this
        generation would never drain here. The child starts from none (a lock
        another thread held at fork time is replaced too)."""
        self._lock = threading.Lock()
        self._tokens = deque()

    def release(self) -> None:
        """Drop the strong references to instances and target once retired."""
        self._modules = None
        self.target = None
