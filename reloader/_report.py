"""What the engine tells about itself: counters, the history of its swaps, the
restart notice, one log line per outcome and the :class:`ReloadEvent` subscribers
get for it.

Its fields are guarded by the engine's state lock, handed in as ``lock``: the
counters and the history change in the same step as the current generation, so
that ``stats()`` never shows one without the other. It is never held while user
code runs (subscribers are called after it is released).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ._events import EventKind, ReloadEvent, Subscribers
from .errors import LoadFailure

log = logging.getLogger("hotmod")


class Reporter:
    """Counters, history and restart notice of one engine, and its announcements."""

    def __init__(self, *, target: str, module: str, keep: int, lock: threading.Lock) -> None:
        self.target = target  # as given: "package.module:attribute"
        self.module = module  # the target's module
        #: The engine's state lock (replaced with it in a forked child).
        self.lock = lock
        self.events = Subscribers()
        self._history: deque[dict[str, Any]] = deque(maxlen=keep)
        self._counts = dict.fromkeys(("reloads", "failures", "clone_errors"), 0)
        # Replaced whole, never changed in place: read without the lock.
        self._restart: dict[str, Any] | None = None

    # -- the reload path ------------------------------------------------------------

    def failed(self, failure: LoadFailure, number: int, started: float) -> ReloadEvent:
        """Count and log a failed plan for generation ``number``; return its event,
        for the engine to publish once it has recorded the failure."""
        with self.lock:
            self._counts["failures"] += 1
        if number == 1:
            log.error("loading %s failed: %s", self.target, failure)
        else:
            log.error("reload failed, generation %d stays current: %s", number - 1, failure)
        return ReloadEvent(
            EventKind.FAILED, number - 1, duration_ms=(time.perf_counter() - started) * 1000,
            failure=failure, detail=str(failure),
        )

    def swapped(
        self, number: int, fresh: Collection[str], importers: int, clone_errors: int, duration: float,
        exec_ms: float, *, first: bool,
    ) -> None:
        """Count and record a swap. The caller holds :attr:`lock` (the swap's own step)."""
        self._counts["reloads"] += 0 if first else 1
        self._counts["clone_errors"] += clone_errors
        self._history.append({
            "time": time.time(), "generation": number, "modules": list(fresh),
            "importers": importers, "duration_ms": round(duration, 3),
            "exec_ms": round(exec_ms, 3),
        })

    def announce_swap(
        self,
        number: int,
        fresh: Collection[str],
        *,
        first: bool,
        deleted: Collection[str],
        unreached: list[str],
        importers: int,
        duration: float,
        exec_ms: float,
    ) -> None:
        """Log the swap and publish it: ``reloaded``, or ``unreached`` when the target
        does not import some of the changed modules (their new code runs only if it
        looks them up itself)."""
        kind, detail = EventKind.RELOADED, f"{len(deleted)} deleted" if deleted else ""
        if first:
            log.info("generation 1: loaded %s (%d modules) in %.1f ms", self.target, len(fresh), duration)
        elif unreached:
            kind = EventKind.UNREACHED
            detail = (
                f"the served target {self.module} does not import {', '.join(unreached)},"
                " directly or through its imports, by statement or by name: it runs their"
                " new code only if it looks them up itself"
            )
            log.warning("generation %d: loaded %s in %.1f ms, but %s",
                        number, ", ".join(fresh), duration, detail,
                        extra={"hotmod_event": "unreached"})
        else:
            log.info(
                "generation %d: reloaded %s (%d importers%s) in %.1f ms",
                number, ", ".join(fresh) or "nothing", importers,
                f", {len(deleted)} deleted" if deleted else "", duration,
            )
        self.events.publish(ReloadEvent(
            kind, number, tuple(fresh), importers, duration, detail=detail, exec_ms=exec_ms,
        ))

    def restart(self, reasons: Mapping[str, str], files: tuple[str, ...], number: int) -> None:
        """Nothing is swapped: generation ``number`` keeps serving, and everyone is told
        that this edit needs a restart, and why (added to what was told before)."""
        detail = self._need_restart(reasons, files)
        log.warning(
            "restart needed: %s changed, and %s; generation %d keeps serving the code"
            " loaded before this edit",
            ", ".join(files), detail, number, extra={"hotmod_event": "restart_needed"},
        )
        self.events.publish(ReloadEvent(
            EventKind.RESTART_NEEDED, number, tuple(sorted(reasons)), detail=detail, files=files,
        ))

    def stale(self, reasons: Mapping[str, str], files: tuple[str, ...], number: int) -> None:
        """Generation ``number`` was swapped in, but code of the instances it replaced
        is still in use outside the generations (``reasons``: module → the holders,
        in one line): only a restart serves the edit of ``files`` whole. Called from
        the janitor, where the stale check runs."""
        detail = self._need_restart(reasons, files)
        log.warning(
            "restart needed: %s was reloaded, but old code is still in use: %s",
            ", ".join(files) or ", ".join(sorted(reasons)), detail,
            extra={"hotmod_event": "restart_needed"},
        )
        self.events.publish(ReloadEvent(
            EventKind.RESTART_NEEDED, number, tuple(sorted(reasons)), detail=detail, files=files,
        ))

    def _need_restart(self, reasons: Mapping[str, str], files: tuple[str, ...]) -> str:
        """Add ``reasons`` to the restart notice; return them in one line."""
        detail = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
        with self.lock:
            before = self._restart
            self._restart = {
                "reason": detail if before is None else f"{before['reason']}; {detail}",
                "modules": sorted({*(before or {}).get("modules", ()), *reasons}),
                "files": sorted({*(before or {}).get("files", ()), *files}),
                "time": time.time(),
            }
        return detail

    def refreshed(self, number: int, files: Iterable[str]) -> None:
        handled = tuple(files)
        log.info("generation %d: refreshed %s", number, ", ".join(handled))
        self.events.publish(
            ReloadEvent(EventKind.REFRESHED, number, files=handled, detail=", ".join(handled))
        )

    def recovered(self, number: int) -> None:
        log.info("the failed edit was undone: generation %d is up to date", number)
        self.events.publish(ReloadEvent(EventKind.RECOVERED, number))

    # -- readers ----------------------------------------------------------------------

    @property
    def restart_needed(self) -> dict[str, Any] | None:
        restart = self._restart  # replaced whole, never changed in place: no lock
        return dict(restart) if restart is not None else None

    def snapshot(self) -> dict[str, Any]:
        """History, restart notice and counters. The caller holds :attr:`lock` (so
        that they match the generation it reads with them)."""
        return {
            "history": list(self._history),
            "restart_needed": dict(self._restart) if self._restart is not None else None,
            **self._counts,
        }
