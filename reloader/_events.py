"""What the engine tells its subscribers: one :class:`ReloadEvent` per reload,
failure, retirement, leak and drain warning or timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import LoadFailure

log = logging.getLogger("hotmod")


@dataclass(frozen=True)
class ReloadEvent:
    """What happened, published to subscribers (see :meth:`Reloader.subscribe`)."""

    #: "reloaded" | "failed" | "recovered" (a failed edit undone) | "retired" | "leaked"
    #: | "drain_warning" | "drain_timeout" | "restart_needed" (a restart-only module
    #: changed: nothing was swapped) | "refreshed" (non-Python files an extension
    #: made current itself: no module ran)
    kind: str
    generation: int
    modules: tuple[str, ...] = ()
    importers: int = 0
    duration_ms: float = 0.0
    failure: LoadFailure | None = None
    time: float = field(default_factory=time.time)
    detail: str = ""
    files: tuple[str, ...] = ()
    #: Of ``duration_ms``, the milliseconds the app's own code ran (module bodies,
    #: clone hooks, the target's factory): the rest is the engine's.
    exec_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modules"] = list(self.modules)
        out["files"] = list(self.files)
        return out


Subscriber = Callable[[ReloadEvent], None]


class Subscribers:
    """The engine's subscribers. The list is replaced whole on every change, never
    edited in place, so that publishing reads it without a lock."""

    def __init__(self) -> None:
        self._fns: list[Subscriber] = []

    def add(self, fn: Subscriber) -> Callable[[], None]:
        self._fns = [*self._fns, fn]

        def unsubscribe() -> None:
            self._fns = [f for f in self._fns if f is not fn]

        return unsubscribe

    def publish(self, event: ReloadEvent) -> None:
        for fn in self._fns:
            try:
                fn(event)
            except Exception:
                log.exception("hotmod event subscriber %r raised", fn)
