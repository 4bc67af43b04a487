"""Library caches that keep retired code alive.

A ``functools.lru_cache`` of a library, keyed by the functions or classes it was
given, keeps every generation's definitions (and through their globals, the whole
instance) alive: FastAPI caches facts about each endpoint that way, ``typing``
caches ``list[Model]`` and the like. The new code can never hit such an entry (its
functions are new objects), and a cache is transparent by contract (it only saves
recomputing), so once a generation retires, each cache outside the generations
whose *keys* reach one of its definitions is cleared: the old instances can be
collected, and the current code's entries are computed again on their next call.
The user's own caches (in reloadable modules) retire with their instance and are
never touched.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Iterable
from types import FunctionType, ModuleType
from typing import Any

from ._loader import TOKEN, InstanceToken

log = logging.getLogger("hotmod")

_LRU_TYPES = (type(functools.lru_cache(maxsize=1)(lambda: None)),)
#: How far from a cache key a retired definition may lie (the key tuple, an object
#: wrapping the function, its attribute dict, the function).
DEPTH = 4
#: Objects looked at per cache at most: a cache of large results is not walked whole.
BUDGET = 5000


def clear_caches_holding(targets: Iterable[Any]) -> list[str]:
    """Clear every library ``lru_cache`` whose entries reach one of ``targets``; the
    names of the cleared ones."""
    wanted = {id(t) for t in targets}
    if not wanted:
        return []
    cleared: list[str] = []
    for wrapper in gc.get_objects():
        if not isinstance(wrapper, _LRU_TYPES):
            continue
        func = getattr(wrapper, "__wrapped__", None)
        if isinstance(getattr(func, "__globals__", None), dict) and isinstance(
            func.__globals__.get(TOKEN), InstanceToken  # type: ignore[union-attr]
        ):
            continue  # the user's own, in a reloadable module: it retires with its instance
        if _reaches(wrapper, wanted):
            wrapper.cache_clear()
            cleared.append(f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}")
    return cleared


def _reaches(wrapper: Any, wanted: set[int]) -> bool:
    """Whether a *key* of ``wrapper``'s cache reaches an object of ``wanted`` within
    :data:`DEPTH` steps, without walking into functions, classes or modules (whose
    referents are whole namespaces) and within :data:`BUDGET` objects.

    Keys only: a cache keyed by an old function can never be hit by the new code (its
    functions are new objects), so its entries only keep the old alive. A cache whose
    *results* are old code (a class looked up by name) serves it to the new code: that
    is stale code, for the stale check to name, never to hide by clearing."""
    own = getattr(wrapper, "__dict__", None)
    frontier: list[Any] = []
    for ref in gc.get_referents(wrapper):
        if type(ref) is dict and ref is not own:  # the cache: key → its entry
            try:
                frontier.extend(list(ref))
            except RuntimeError:  # another thread filled it meanwhile
                return False
    seen: set[int] = set()
    for _ in range(DEPTH):
        following: list[Any] = []
        for obj in frontier:
            key = id(obj)
            if key in wanted:
                return True
            if key in seen or isinstance(obj, (FunctionType, type, ModuleType)):
                continue
            seen.add(key)
            if len(seen) > BUDGET:
                return False
            following.extend(gc.get_referents(obj))
        frontier = following
    return any(id(obj) in wanted for obj in frontier)


__all__ = ["clear_caches_holding"]
