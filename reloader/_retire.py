"""Retirement: the janitor thread, drain warnings and timeouts, the purge hooks that
fall due once every generation holding a replaced instance has retired, and the
leak and stale checks that follow (``_leaks``, ``_stale``)."""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._events import EventKind, ReloadEvent
from ._extension import Extension, retired
from ._generation import DRAINING, RETIRED, Generation
from ._leaks import LeakWatch, StaleFinding
from ._registry import Registry
from ._report import Reporter
from ._stale import Scope

log = logging.getLogger("hotmod")


class Janitor:
    """One background thread that runs retirements, purges and leak checks, so that
    no hook ever runs on a caller's thread or while a lock a caller takes is held."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()  # guards _tasks, _busy, _thread
        # (due, seq, work, counted): uncounted tasks are timers wait_idle ignores.
        self._tasks: list[tuple[float, int, Callable[[], None], bool]] = []
        self._seq = itertools.count()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, fn: Callable[[], None], delay: float = 0.0, *, timer: bool = False) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._tasks, (time.monotonic() + delay, next(self._seq), fn, not timer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping and not self._tasks:
                        return
                    if self._tasks:
                        wait = self._tasks[0][0] - time.monotonic()
                        if wait <= 0 or self._stopping:
                            fn = heapq.heappop(self._tasks)[2]
                            self._busy = True
                            break
                    else:
                        wait = None
                    self._cond.wait(wait)
            try:
                fn()
            except Exception:
                log.exception("hotmod janitor task failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or any(t[3] for t in self._tasks):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            # Leak checks scheduled for later are pointless at shutdown; due work runs.
            now = time.monotonic()
            self._tasks = [t for t in self._tasks if t[0] <= now]
            heapq.heapify(self._tasks)
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork(self) -> None:
        self._cond = threading.Condition()
        self._thread = None
        self._busy = False


@dataclass
class Replaced:
    """An instance that a generation no longer holds, waiting for every generation
    that held it or its clone lineage (numbers ``since`` to ``until - 1``) to retire."""

    module: ModuleType
    name: str
    born: int  # the generation that created it
    #: The oldest generation whose resources it may hold: its clone lineage starts
    #: there (a clone shares what its donor opened), so its purge waits for that too.
    since: int
    purge: bool  # nothing was handed over: its __mp_purge__ is due
    until: int = 0  # the generation that replaced it (set by Retirement.add)


class Retirement:
    """The live generations, the instances they replaced, and what happens when a
    superseded generation drains: due purges on the janitor, then the leak check."""

    def __init__(
        self,
        *,
        name: str,
        drain_warning: float | None,
        drain_timeout: float | None,
        leak_check_delay: float,
        keep: int,
        publish: Callable[[ReloadEvent], None],
        current: Callable[[], Generation | None],
        closed: Callable[[], bool],
        extensions: Sequence[Extension] = (),
        reporter: Reporter | None = None,
        registry: Registry | None = None,
    ) -> None:
        """``extensions``: the engine's own list (extend() appends to it), whose
        ``retired`` hooks run after a generation's purges. ``reporter`` and
        ``registry``: where stale code found after a retirement is told
        (``restart_needed``) and remembered (its module becomes restart-only);
        without them it is only logged and listed."""
        self._extensions = extensions
        # The served targets of the latest retired generations (the stale check's scope).
        self._retired_apps: deque[weakref.ref[Any]] = deque(maxlen=keep)
        self.drain_warning = drain_warning
        self.drain_timeout = drain_timeout
        self._publish = publish
        self._current = current
        self._closed = closed
        self._lock = threading.Lock()  # guards live, _replaced, counts; never held by hooks
        self.live: dict[int, Generation] = {}
        self._replaced: list[Replaced] = []
        self.counts = {"retired": 0, "purges": 0, "purge_errors": 0}
        self.janitor = Janitor(name)
        self._reporter = reporter
        self._registry = registry
        self.leaks = LeakWatch(
            delay=leak_check_delay, keep=keep,
            submit=lambda fn, delay: self.janitor.submit(fn, delay), publish=publish,
            scope=self._stale_scope, on_stale=self._on_stale,
        )
        self._purged: weakref.WeakSet[ModuleType] = weakref.WeakSet()
        self._purge_lock = threading.Lock()  # one purge at a time, each instance once
        #: Runs what an ``async def __mp_purge__`` returned, to its end (see
        #: Reloader.coroutine_runner); by default in a loop of its own.
        self.run_coroutine: Callable[[Awaitable[Any]], Any] = run_in_own_loop

    # -- the reload path -----------------------------------------------------------

    def add(self, gen: Generation, replaced: Iterable[Replaced]) -> None:
        """``gen`` is live; ``replaced`` are the instances it no longer holds."""
        records = list(replaced)
        for record in records:
            record.until = gen.number
        with self._lock:
            self._replaced.extend(records)
            self.live[gen.number] = gen

    def superseded(self, gen: Generation) -> None:
        """``gen`` is no longer current: it retires once drained."""
        gen.supersede()
        if gen.state == DRAINING:
            self._schedule_drain_checks(gen)

    def on_drained(self, gen: Generation) -> None:
        """Called by whoever saw a superseded generation drain (often a caller leaving
        it): the work goes to the janitor."""
        self.janitor.submit(lambda: self.retire([gen]))

    # -- queries -------------------------------------------------------------------

    def live_generations(self) -> list[Generation]:
        with self._lock:
            return sorted(self.live.values(), key=lambda g: g.number)

    def draining(self) -> list[Generation]:
        return [g for g in self.live_generations() if g.state == DRAINING]

    def draining_snapshot(self) -> list[dict[str, Any]]:
        """Each draining generation: its number, callers inside, since when (wall time)."""
        return [
            {
                "generation": g.number,
                "in_flight": g.in_flight,
                "since": None if g.superseded_at is None else
                time.time() - (time.monotonic() - g.superseded_at),
            }
            for g in self.draining()
        ]

    def awaiting(self) -> int:
        """Superseded generations that drained and wait for the janitor to retire them
        (their leak checks are not even scheduled yet)."""
        current = self._current()
        return sum(1 for g in self.live_generations() if g is not current and g.state == RETIRED)

    def snapshot_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    # -- retiring ------------------------------------------------------------------

    def _schedule_drain_checks(self, gen: Generation) -> None:
        ref = weakref.ref(gen)
        if self.drain_warning is not None:
            self.janitor.submit(
                lambda: self._drain_check(ref, timeout=False), self.drain_warning, timer=True
            )
        if self.drain_timeout is not None:
            self.janitor.submit(
                lambda: self._drain_check(ref, timeout=True), self.drain_timeout, timer=True
            )

    def _drain_check(self, ref: weakref.ref[Generation], *, timeout: bool) -> None:
        gen = ref()
        if gen is None or gen.state != DRAINING:
            return
        waited = time.monotonic() - (gen.superseded_at or time.monotonic())
        if timeout:
            if gen.force_retire():
                log.warning(
                    "generation %d still had %d callers still inside after %.0f s: retiring it"
                    " anyway (drain_timeout) and running its due purge hooks",
                    gen.number, gen.in_flight, waited,
                )
                self._publish(
                    ReloadEvent(EventKind.DRAIN_TIMEOUT, gen.number, detail=f"{gen.in_flight} in flight")
                )
                self.retire([gen])
        else:
            log.warning(
                "generation %d has been draining for %.0f s with %d callers still inside"
                " (a stream or long poll?); its purge hooks wait until they end%s",
                gen.number, waited, gen.in_flight,
                "" if self.drain_timeout is None else f" or until drain_timeout={self.drain_timeout}s",
            )
            self._publish(
                ReloadEvent(EventKind.DRAIN_WARNING, gen.number, detail=f"{gen.in_flight} in flight")
            )

    def retire(self, gens: list[Generation], *, leak_check: bool = True) -> None:
        """Forget the generations, run the due purges of instances no live generation
        holds any more, schedule the leak check."""
        released: list[tuple[Generation, bool]] = []  # (generation, retired by this call)
        with self._lock:
            current = self._current()
            for gen in gens:
                if self.live.get(gen.number) is gen and gen is not current:
                    del self.live[gen.number]
                    self.counts["retired"] += 1
                    released.append((gen, True))
                elif gen is current and not self._closed():
                    continue
                else:
                    released.append((gen, False))
            live = [g.number for g in self.live.values()]
            held = [r for r in self._replaced if any(r.since <= n < r.until for n in live)]
            free = [r for r in self._replaced if not any(r.since <= n < r.until for n in live)]
            self._replaced = held
        # Before the purges: what a retiring target stops may still use their resources.
        for gen, newly in released:
            if newly:
                retired(self._extensions, gen, hook="retiring")
        for record in free:
            if record.purge:
                self.purge(record.module, record.name)
        # After the purges, while the generation still holds its target and instances.
        for gen, newly in released:
            if newly:
                retired(self._extensions, gen)
                self._remember_app(gen.target)
            gen.release()
        # After the purges: a subscriber told "retired" may rely on them having run.
        for gen in gens:
            self._publish(ReloadEvent(EventKind.RETIRED, gen.number))
        if leak_check and free:
            instances = [(r.name, r.born, r.module) for r in free]
            del free
            self.leaks.watch(instances)

    def purge(self, module: ModuleType, name: str) -> None:
        hook = vars(module).get("__mp_purge__")
        if not callable(hook):
            return
        with self._purge_lock:
            if module in self._purged:
                return
            self._purged.add(module)
        try:
            result = hook(module) if _takes_one_argument(hook) else hook()
            if inspect.isawaitable(result):
                self.run_coroutine(result)
            with self._lock:
                self.counts["purges"] += 1
        except Exception:
            with self._lock:
                self.counts["purge_errors"] += 1
            # The traceback as text: a handler that keeps records (a test's log capture,
            # an error reporter) must not keep the instance alive through its frames.
            log.error("__mp_purge__ of %s raised:\n%s", name, traceback.format_exc())

    def close(self) -> list[Generation]:
        """Stop the janitor and retire every live generation now (shutdown): their
        due purges run on this thread. Returns them."""
        self.janitor.stop()
        live = self.live_generations()
        for gen in live:
            gen.force_retire()
        self.retire(live, leak_check=False)
        return live

    def forget_all(self) -> None:
        with self._lock:
            self.live.clear()

    # -- stale code ----------------------------------------------------------------

    def _remember_app(self, app: Any) -> None:
        """A retired generation's served target, weakly, for the stale check's scope."""
        try:
            self._retired_apps.append(weakref.ref(app))
        except TypeError:  # not weakly referable (a builtin): nothing to remember
            pass

    def _stale_scope(self, checked: set[str]) -> Scope:
        """The generations as the stale check sees them, on the janitor: the module
        namespaces of the live generations; reloadable, any name the registry or a
        live generation knows, and the names being checked."""
        live = self.live_generations()
        tables = [dict(gen.modules) for gen in live]
        names = {name for table in tables for name in table} | checked
        registry = self._registry

        def reloadable(name: str) -> bool:
            return name in names or (registry is not None and name in registry)

        apps = [app for ref in list(self._retired_apps) if (app := ref()) is not None]
        return Scope([vars(m) for table in tables for m in table.values()], reloadable, apps)

    def _on_stale(self, findings: list[StaleFinding]) -> None:
        """Old code is reachable from outside the generations: each module becomes
        restart-only, and everyone is told that the process needs a restart."""
        reasons = {f.module: f.reason() for f in findings}
        if self._registry is not None:
            for name, reason in reasons.items():
                self._registry.stale.mark(name, reason)
        if self._reporter is not None:
            current = self._current()
            files = tuple(sorted({f.file for f in findings if f.file}))
            self._reporter.stale(reasons, files, current.number if current is not None else 0)

    def after_fork(self) -> None:
        """Locks another thread held at fork time stay held forever in the child."""
        self._lock = threading.Lock()
        self._purge_lock = threading.Lock()
        self.janitor.after_fork()
        self.leaks.after_fork()
        if self._registry is not None:
            self._registry.stale.after_fork()
        for gen in list(self.live.values()):
            gen.after_fork_in_child()


def run_in_own_loop(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` in a new event loop on this thread (no server's loop is
    known: a resource bound to another loop may refuse to close here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("an async __mp_purge__ cannot be awaited on the thread of a running"
                           " event loop without blocking it; set Reloader.coroutine_runner")

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


def _takes_one_argument(fn: Callable[..., object]) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 1
