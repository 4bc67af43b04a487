"""What the engine tells its subscribers: one :class:`ReloadEvent` per reload,
failure, retirement, leak and drain warning or timeout."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import LoadFailure

log = logging.getLogger("hotmod")


class EventKind(enum.StrEnum):
    """Every kind of :class:`ReloadEvent` the engine publishes. A ``str``:
    ``event.kind == "reloaded"`` holds, and JSON shows the plain word."""

    #: A plan was swapped in (``generation`` is the new one; the first load too).
    RELOADED = "reloaded"
    #: A plan was swapped in, but the served target does not import some of the
    #: changed modules (``detail`` names them): it runs their new code only if it
    #: looks them up itself. Otherwise as ``reloaded``.
    UNREACHED = "unreached"
    #: A plan failed; ``generation`` (the last good one) stays current; ``failure``.
    FAILED = "failed"
    #: A failed edit was undone: the files are back to what the current generation loaded.
    RECOVERED = "recovered"
    #: A superseded generation drained (or was forced out) and its due purges ran.
    RETIRED = "retired"
    #: A replaced instance was still alive after its generation retired.
    LEAKED = "leaked"
    #: A superseded generation has been draining for ``drain_warning`` seconds.
    DRAIN_WARNING = "drain_warning"
    #: A superseded generation was retired anyway after ``drain_timeout`` seconds.
    DRAIN_TIMEOUT = "drain_timeout"
    #: A restart-only module changed: nothing was swapped.
    RESTART_NEEDED = "restart_needed"
    #: Non-Python files an extension made current itself: no module ran.
    REFRESHED = "refreshed"


@dataclass(frozen=True)
class ReloadEvent:
    """What happened, published to subscribers (see :meth:`Reloader.subscribe`)."""

    #: One of :class:`EventKind` (each documented there).
    kind: EventKind
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
