"""Generations: numbered, immutable sets of module instances and their target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import Any

LOADING = "loading"
CURRENT = "current"
DRAINING = "draining"
RETIRED = "retired"

_EMPTY: Mapping[str, ModuleType] = MappingProxyType({})


class Generation:
    """One numbered set of module instances and the target resolved from them.

    States go *loading* → *current* → *draining* (superseded, requests in flight) →
    *retired* (drained; its due purge hooks run on the engine's janitor thread).

    ``enter()``/``exit()`` count requests in flight. Both take this generation's own
    lock for a counter update only, never across the request: the lock exists so that
    "the last request left a draining generation" and "a new request entered" cannot
    interleave, which is what lets ``enter()`` refuse a generation that is already
    retired (the caller then enters the new current one, see ``Reloader.acquire``).
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "_modules",
        "_on_drained",
        "created_at",
        "in_flight",
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
        self.state = LOADING
        self.in_flight = 0  # guarded by _lock
        self.created_at = time.time()
        self.superseded_at: float | None = None  # time.monotonic()
        self._lock = threading.Lock()
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

    def enter(self) -> bool:
        """Count one request in. False when this generation is already retired."""
        with self._lock:
            if self.state == RETIRED:
                return False
            self.in_flight += 1
            return True

    def exit(self) -> None:
        """Count one request out; the last one out of a draining generation retires it."""
        with self._lock:
            self.in_flight -= 1
            drained = self.in_flight == 0 and self.state == DRAINING
            if drained:
                self.state = RETIRED
        if drained:
            self._on_drained(self)

    # -- engine side -------------------------------------------------------------

    def _make_current(self) -> None:
        with self._lock:
            self.state = CURRENT

    def _supersede(self) -> bool:
        """Mark draining; True if nothing is in flight, in which case it is retired now."""
        with self._lock:
            self.superseded_at = time.monotonic()
            if self.in_flight == 0:
                self.state = RETIRED
                return True
            self.state = DRAINING
            return False

    def _force_retire(self) -> bool:
        """Retire whatever is in flight (shutdown, drain timeout). True if it changed."""
        with self._lock:
            if self.state == RETIRED:
                return False
            self.state = RETIRED
            return True

    def _release(self) -> None:
        """Drop the strong references to instances and target once retired."""
        self._modules = None
        self.target = None
