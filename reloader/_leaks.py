"""Leak detection: after a retirement only weak references to the replaced instances
(and to what each defines, for the stale check of ``_stale``) are kept; a garbage
collection later, an instance still alive is reported with what holds it, and old
code still reachable from outside the generations is reported as stale."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import FrameType, FunctionType, ModuleType
from typing import Any

from ._caches import clear_caches_holding
from ._events import EventKind, ReloadEvent
from ._loader import TOKEN, InstanceToken
from ._stale import Definition, Holding, Scope, definitions, find_holders

log = logging.getLogger("hotmod")

#: While retirements keep coming, the leak check waits at most this many times its
#: delay after the first one waiting for it.
QUIET_CAP = 10


@dataclass(frozen=True)
class _Watched:
    """A retired instance waiting for its check."""

    name: str
    born: int  # the generation it was born in
    module: weakref.ref[ModuleType]
    token: weakref.ref[InstanceToken] | None
    defined: tuple[Definition, ...]  # what it defines (the stale check)
    file: str | None
    looks: int = 0  # looks so far
    suspect: bool = False  # its first look named holders of its code


@dataclass(frozen=True)
class StaleFinding:
    """Old code of the instance of ``module`` born in generation ``born`` that a
    holder outside the generations still references."""

    module: str
    born: int
    file: str | None
    holdings: tuple[Holding, ...]

    def reason(self) -> str:
        """One line naming the first holder (and how many more were found)."""
        first = self.holdings[0]
        more = len(self.holdings) - 1
        return f"{first.holder} still holds {first.held} of generation {self.born}" + (
            f" (and {more} more holder{'s' if more > 1 else ''}: see the status's 'stale')" if more else ""
        )


class LeakWatch:
    """Retired instances waiting for their check, and the leaks found so far."""

    def __init__(
        self,
        *,
        delay: float,
        keep: int,
        submit: Callable[[Callable[[], None], float], None],
        publish: Callable[[ReloadEvent], None],
        scope: Callable[[set[str]], Scope] | None = None,
        on_stale: Callable[[list[StaleFinding]], None] | None = None,
    ) -> None:
        """``scope(names)``: what counts as the generations now (``names``: the modules
        being checked); None turns the stale check off. ``on_stale(findings)`` is
        called, with no lock held, when a check found stale code."""
        self.delay = delay
        self._submit = submit
        self._publish = publish
        self._scope = scope
        self._on_stale = on_stale
        self._lock = threading.Lock()  # guards the fields below up to ``stale``
        self._watch: list[_Watched] = []
        # When the first and the latest retirement waiting for the check came.
        self._first = self._latest = 0.0
        self._checking = 0  # instances taken by the check running now
        # The latest leaks only (the status serves them whole); ``count`` counts them all.
        self.leaked: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        # The latest stale holders found (the status serves them whole).
        self.stale: deque[dict[str, Any]] = deque(maxlen=keep)

    def watch(self, instances: Iterable[tuple[str, int, ModuleType]]) -> None:
        """Check ``(name, born, instance)`` with a collection once no retirement has
        come for ``delay`` seconds: a full collection takes milliseconds on a large
        heap, and while edits keep coming it would land in the next reload or its
        first request. While they never stop, the check runs ``QUIET_CAP x delay``
        after the first retirement waiting for it."""
        check_stale = self._scope is not None
        watch = [
            _Watched(
                name, born, weakref.ref(module), token_ref(module),
                definitions(module, name) if check_stale else (), getattr(module, "__file__", None),
            )
            for name, born, module in instances
        ]
        if not watch:
            return
        now = time.monotonic()
        with self._lock:
            # One collection covers every retirement queued before it runs.
            schedule = not self._watch
            if schedule:
                self._first = now
            self._latest = now
            self._watch.extend(watch)
        if schedule:
            self._submit(self._check, self.delay)

    def snapshot(self) -> tuple[list[dict[str, Any]], int, int]:
        """The latest leaks, how many were found in all, and how many retired
        instances still wait for their check (or are being checked now)."""
        with self._lock:
            return list(self.leaked), self.count, len(self._watch) + self._checking

    def stale_snapshot(self) -> list[dict[str, Any]]:
        """The latest stale holders found: ``{"generation", "module", "object",
        "holder", "time"}`` each."""
        with self._lock:
            return [dict(record) for record in self.stale]

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def _check(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._latest + self.delay - now
            if wait > 0 and now - self._first < QUIET_CAP * self.delay:
                later = True  # a retirement came meanwhile: edits are still coming
            else:
                later = False
                watch, self._watch = self._watch, []
                self._checking = len(watch)
        if later:
            self._submit(self._check, wait)
            return
        try:
            self._check_now(watch)
        finally:
            with self._lock:
                self._checking = 0

    def _check_now(self, watch: list[_Watched]) -> None:
        gc.collect()
        if _release_library_caches(watch):
            gc.collect()
        again: list[_Watched] = []
        first: list[_Watched] = []  # old code alive at a first look: searched at once
        confirm: list[_Watched] = []  # holders named at the first look: searched again
        for item in watch:
            token = item.token() if item.token is not None else None
            instance_alive = item.module() is not None or token is not None
            code_alive = any(d.ref() is not None for d in item.defined)
            if not instance_alive and not code_alive:
                continue
            if item.looks == 0:
                # Something may hold it for a moment yet (a thread leaving a frame, a
                # library's queue about to run a callback): only what is alive at a second
                # look is reported. The search for stale code runs now already: most old
                # code alive now is held by the generations (handed over, in typing's
                # caches), and then one search with no second look settles it.
                if code_alive:
                    first.append(item)
                elif instance_alive:
                    again.append(replace(item, looks=1))
                continue
            if code_alive and item.suspect:
                confirm.append(item)
            if not instance_alive:
                continue
            where = describe_holders(token) if token is not None else "the module object is referenced"
            del token
            record = {"generation": item.born, "module": item.name, "referrers": where}
            with self._lock:
                self.leaked.append(record)
                self.count += 1
            log.warning(
                "leak: instance of %s from generation %d is still alive after retirement: %s",
                item.name, item.born, where,
            )
            self._publish(ReloadEvent(EventKind.LEAKED, item.born, (item.name,), detail=where))
        if first:
            named = self._search(first)
            for index, item in enumerate(first):
                if index in named or item.module() is not None or (item.token and item.token()):
                    again.append(replace(item, looks=1, suspect=index in named))
        if confirm:
            self._report_stale(confirm, self._search(confirm))
        if again:
            with self._lock:
                schedule = not self._watch
                self._watch.extend(again)
            if schedule:
                self._submit(self._check, max(self.delay, 0.2))

    def _search(self, suspects: list[_Watched]) -> dict[int, list[Holding]]:
        """Index of each suspect whose old code a holder outside the generations still
        references → those holders."""
        if self._scope is None:
            return {}
        targets, owners = _alive_definitions(suspects)
        try:
            holdings = find_holders(targets, self._scope({item.name for item in suspects}))
        except Exception:
            # The leak check goes on; the text, not the traceback, is kept (its frames
            # would hold the old code the search was following).
            log.error("the stale check failed:\n%s", traceback.format_exc())
            return {}
        finally:
            del targets
        found: dict[int, list[Holding]] = {}
        for holding in holdings:
            found.setdefault(owners[holding.index], []).append(holding)
        return found

    def _report_stale(self, suspects: list[_Watched], found: dict[int, list[Holding]]) -> None:
        findings = []
        now = time.time()
        for index, held in found.items():
            item = suspects[index]
            findings.append(StaleFinding(item.name, item.born, item.file, tuple(held)))
            for holding in held:
                log.warning(
                    "stale code: %s still holds %s of generation %d; %s counts as restart-only"
                    " for the rest of this process",
                    holding.holder, holding.held, item.born, item.name,
                )
                with self._lock:
                    self.stale.append({
                        "generation": item.born, "module": item.name, "object": holding.held,
                        "holder": holding.holder, "time": now,
                    })
        if findings and self._on_stale is not None:
            self._on_stale(findings)


def _release_library_caches(watch: Sequence[_Watched]) -> bool:
    """Clear the library caches that hold the definitions of retired instances still
    alive (``_caches``); whether any was cleared. A function of its own, so that no
    frame of the check keeps a definition in a local variable."""
    targets = [obj for item in watch for obj in (item.module(), *(d.ref() for d in item.defined))
               if obj is not None]
    if not targets:
        return False
    try:
        cleared = clear_caches_holding(targets)
    except Exception:
        log.error("clearing library caches failed:\n%s", traceback.format_exc())
        return False
    finally:
        del targets
    if cleared:
        log.info("cleared library caches that held retired code: %s", ", ".join(cleared))
    return bool(cleared)


def _alive_definitions(suspects: Sequence[_Watched]) -> tuple[list[tuple[str, Any]], list[int]]:
    """The suspects' definitions still alive, as ``(name, object)``, and for each the
    index of its suspect. A function of its own, so that no frame of the check keeps
    one of them in a local variable."""
    targets: list[tuple[str, Any]] = []
    owners: list[int] = []
    for index, item in enumerate(suspects):
        for definition in item.defined:
            obj = definition.ref()
            if obj is not None:
                targets.append((definition.name, obj))
                owners.append(index)
    return targets, owners


def token_ref(module: ModuleType) -> weakref.ref[InstanceToken] | None:
    token = vars(module).get(TOKEN)
    return weakref.ref(token) if isinstance(token, InstanceToken) else None


def describe_holders(token: InstanceToken, limit: int = 4) -> str:
    """Say what keeps a retired instance's namespace alive, in a few words each."""
    namespaces = [r for r in gc.get_referrers(token) if isinstance(r, dict) and r.get(TOKEN) is token]
    if not namespaces:
        return "unknown referrer"
    ns = namespaces[0]
    found: list[str] = []
    for ref in gc.get_referrers(ns):
        if len(found) >= limit:
            break
        if isinstance(ref, FunctionType):
            held = _holders_of(ref)
            if held:
                found.append(f"function {ref.__qualname__} of the old instance, held by {held}")
        elif isinstance(ref, FrameType):
            code = ref.f_code
            found.append(f"a running frame {code.co_name} at {code.co_filename}:{ref.f_lineno}")
        elif isinstance(ref, ModuleType):
            held = _holders_of(ref)
            if held:
                found.append(f"the old module object, held by {held}")
    return "; ".join(found) or "an object that gc cannot name"


def _holders_of(obj: Any) -> str:
    names: list[str] = []
    for holder in gc.get_referrers(obj):
        name = _name_holder(holder, obj)
        if name and name not in names:
            names.append(name)
    return ", ".join(names[:3])


def _name_holder(holder: Any, obj: Any) -> str:
    if isinstance(holder, dict):
        keys = [k for k, v in holder.items() if v is obj]
        token = holder.get(TOKEN)
        if isinstance(token, InstanceToken):
            if not keys or keys[0].startswith("__mp_"):
                return ""  # the old instance's own definition of it
            return f"global {keys[0]!r} of {token.module} (generation {token.generation})"
        if holder is sys.modules:
            return "sys.modules"
        for cls in gc.get_referrers(holder):
            if isinstance(cls, type):
                return f"class {cls.__module__}.{cls.__qualname__}"
        return f"a dict (key {keys[0]!r})" if keys else ""
    if isinstance(holder, (FunctionType, FrameType, list, tuple)) or type(holder).__name__ == "cell":
        return ""
    return f"a {type(holder).__module__}.{type(holder).__qualname__} object"
