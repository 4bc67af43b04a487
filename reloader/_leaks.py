"""Leak detection: after a retirement only weak references to the replaced instances
are kept; a garbage collection later, an instance still alive is reported with what
holds it."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from types import FrameType, FunctionType, ModuleType
from typing import Any

from ._events import EventKind, ReloadEvent
from ._loader import TOKEN, InstanceToken

log = logging.getLogger("hotmod")

#: While retirements keep coming, the leak check waits at most this many times its
#: delay after the first one waiting for it.
QUIET_CAP = 10

#: (module name, generation it was born in, its weak reference, its token's, looks so far)
_Watched = tuple[str, int, weakref.ref[ModuleType], weakref.ref[InstanceToken] | None, int]


class LeakWatch:
    """Retired instances waiting for their check, and the leaks found so far."""

    def __init__(
        self,
        *,
        delay: float,
        keep: int,
        submit: Callable[[Callable[[], None], float], None],
        publish: Callable[[ReloadEvent], None],
    ) -> None:
        self.delay = delay
        self._submit = submit
        self._publish = publish
        self._lock = threading.Lock()  # guards the three fields below
        self._watch: list[_Watched] = []
        # When the first and the latest retirement waiting for the check came.
        self._first = self._latest = 0.0
        self._checking = 0  # instances taken by the check running now
        # The latest leaks only (the status serves them whole); ``count`` counts them all.
        self.leaked: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0

    def watch(self, instances: Iterable[tuple[str, int, ModuleType]]) -> None:
        """Check ``(name, born, instance)`` with a collection once no retirement has
        come for ``delay`` seconds: a full collection takes milliseconds on a large
        heap, and while edits keep coming it would land in the next reload or its
        first request. While they never stop, the check runs ``QUIET_CAP x delay``
        after the first retirement waiting for it."""
        watch = [(name, born, weakref.ref(module), token_ref(module), 0) for name, born, module in instances]
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
        again = []
        for name, born, module_ref, token_ref_, checks in watch:
            token = token_ref_() if token_ref_ is not None else None
            if module_ref() is None and token is None:
                continue
            if checks == 0:
                # Something may hold it for a moment yet (a thread leaving a frame):
                # only an instance alive at a second look is reported.
                again.append((name, born, module_ref, token_ref_, 1))
                continue
            where = describe_holders(token) if token is not None else "the module object is referenced"
            record = {"generation": born, "module": name, "referrers": where}
            with self._lock:
                self.leaked.append(record)
                self.count += 1
            log.warning(
                "leak: instance of %s from generation %d is still alive after retirement: %s",
                name, born, where,
            )
            self._publish(ReloadEvent(EventKind.LEAKED, born, (name,), detail=where))
        if again:
            with self._lock:
                schedule = not self._watch
                self._watch.extend(again)
            if schedule:
                self._submit(self._check, max(self.delay, 0.2))


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
