"""Stale code: functions, classes and methods of a replaced instance that are still
referenced from outside the generations once it retired.

A library that resolved a dotted path once (Django REST framework binds
``DEFAULT_PAGINATION_CLASS`` as a class attribute of its own ``GenericAPIView``),
a registry list, a ``functools.lru_cache``, a running thread's target: each keeps
calling the code of an instance that no generation holds any more, while the
engine has logged "reloaded". The leak check cannot see it: it follows the
replaced module objects, and a class with no method does not even hold its
module's namespace.

How (docs/reliability.md, "Stale code", says where the line is and why):

* at retirement, :func:`definitions` takes weak references to what each replaced
  instance *defines*: the objects of its namespace whose ``__module__`` is its
  name (functions, classes, cache wrappers) and, through the classes' namespaces,
  their methods (staticmethod, classmethod and property wrappers included) and
  nested classes;
* at the leak check, after its garbage collection, any of them still alive is
  followed up its referrers by :func:`find_holders`, one ``gc.get_referrers`` scan
  of the heap per level, to a *named holder* outside the generations: a global of
  a module that is not reloadable (``pkg.mod.NAME``, and on through the items and
  attributes below it), an attribute of a class reachable by its name
  (``pkg.mod.Class.attr``), a cached result of a ``functools`` cache, a live
  thread (``thread 'name' target``).

What never counts: a path through the generations' own module namespaces (what a
clone hook handed over is the app's data), through any reloadable module's
namespace (a retired instance's own, or one being loaded), hotmod's own objects,
frames (running locals are transient; the frames of this check are among them),
dictionary keys, and cache entries whose key holds old code (only old code can
look them up: ``typing.Optional[OldClass]`` sits in typing's cache that way).
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import CellType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

from ._loader import TOKEN

log = logging.getLogger("hotmod")

#: How far up the referrers a survivor is followed, and how many objects at most
#: (per level and in all) a search looks at: a bound on the cost, not a guess at
#: the depth of real holders (the deepest ones we know, a closure in library code
#: kept in a registry, are five levels up).
MAX_DEPTH = 8
MAX_FRONTIER = 2_000
MAX_NODES = 20_000
#: Holders named per object (one is enough to know it is stale).
HOLDERS_PER_OBJECT = 3

_LRU_WRAPPER: type | None = getattr(functools, "_lru_cache_wrapper", None)


@dataclass(frozen=True)
class Definition:
    """A function, class or method defined by one replaced instance, weakly held."""

    name: str  # "snippets.pagination.StandardPagination"
    ref: Any  # weakref.ref to it (typed loosely: weakref.ref is generic only for mypy)


@dataclass(frozen=True)
class Holding:
    """``holder`` (a name outside the generations) still holds ``held``, the object
    at ``index`` of the targets searched. ``kind``: what the holder's name starts
    from, a ``"class"`` attribute, a module ``"global"`` or a ``"thread"``."""

    holder: str
    held: str
    index: int
    kind: str


def definitions(module: ModuleType, name: str) -> tuple[Definition, ...]:
    """Weak references to what ``module`` (an instance of ``name``) defines: the
    functions, classes and ``functools`` cache wrappers of its namespace whose
    ``__module__`` is ``name``, what their closures and ``__wrapped__`` hold (a
    decorated function), and the methods and nested classes of its classes. Only
    types are asked anything: a lazy proxy in the namespace (``request``,
    ``settings``) is never touched."""
    out: list[Definition] = []
    seen: set[int] = set()

    def add(obj: Any, qualname: str) -> None:
        seen.add(id(obj))
        own = getattr(obj, "__qualname__", None)
        if isinstance(own, str) and "<" not in own:
            qualname = own  # a lambda or a local keeps the name it is found under
        out.append(Definition(f"{name}.{qualname}", weakref.ref(obj)))

    def visit(obj: Any, qualname: str, depth: int) -> None:
        kind = type(obj)
        if issubclass(kind, (staticmethod, classmethod)):
            obj, kind = obj.__func__, type(obj.__func__)
        if issubclass(kind, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                if part is not None:
                    visit(part, qualname, depth)
            return
        if id(obj) in seen or depth > 3:
            return
        if issubclass(kind, FunctionType):
            # A decorator's wrapper (ours or a library's) holds the function it wraps.
            for cell in obj.__closure__ or ():
                try:
                    inner = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if issubclass(type(inner), (FunctionType, type)):
                    visit(inner, qualname, depth + 1)
            wrapped = obj.__dict__.get("__wrapped__")  # functools.wraps
        elif _LRU_WRAPPER is not None and issubclass(kind, _LRU_WRAPPER):
            wrapped = obj.__wrapped__
        elif issubclass(kind, type):
            wrapped = None
        else:
            return
        if obj.__module__ == name:
            add(obj, qualname)
            if issubclass(kind, type):
                for key, value in list(vars(obj).items()):
                    visit(value, f"{qualname}.{key}", depth + 1)
        if wrapped is not None:
            visit(wrapped, qualname, depth + 1)

    for key, value in list(vars(module).items()):
        if not key.startswith("__"):
            visit(value, key, 0)
    return tuple(out)


# -- finding the holders ------------------------------------------------------------------


class Scope:
    """What counts as inside the generations, as seen at the start of one search.

    :param live: the module namespaces of the live generations (by identity).
    :param reloadable: whether a module name is one the engine loads (registry,
        live generations, the instances being checked).
    :param retired_apps: the served targets of retired generations (their app
        objects) still alive: a path through one is that old app kept, which the leak
        check reports, not old code a library calls in place of the new (nobody
        serves a retired generation's app: CherryPy's start-up checker leaves the
        previous app on a process-wide dummy request, and a path from there is no
        stale code).
    """

    def __init__(
        self,
        live: Iterable[dict[str, Any]],
        reloadable: Callable[[str], bool],
        retired_apps: Iterable[Any] = (),
    ) -> None:
        self.reloadable = reloadable
        self.live: set[int] = {id(ns) for ns in live}
        self.retired_apps: set[int] = {id(app) for app in retired_apps}
        #: namespace id → module name, for the modules in sys.modules that are not
        #: reloadable: the roots of named holders.
        self.library: dict[int, str] = {}
        for mod_name, module in list(sys.modules.items()):
            if not issubclass(type(module), ModuleType):
                continue  # something a library put there in place of a module
            namespace = vars(module)
            if reloadable(mod_name) or TOKEN in namespace:
                self.live.add(id(namespace))  # one of ours, perhaps being loaded right now
            elif not _is_hotmod(mod_name):
                self.library[id(namespace)] = mod_name

    def named_class(self, cls: type) -> str | None:
        """``pkg.mod.Class`` when that name, looked up, gives ``cls`` back and names
        no reloadable module."""
        module_name = getattr(cls, "__module__", None)
        qualname = getattr(cls, "__qualname__", "")
        if not isinstance(module_name, str) or "<" in qualname or _is_hotmod(module_name):
            return None
        if self.reloadable(module_name):
            return None
        obj: Any = sys.modules.get(module_name)
        try:
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
        except Exception:  # a module's __getattr__ that imports, and fails
            log.debug("looking up %s.%s failed", module_name, qualname, exc_info=True)
            return None
        return f"{module_name}.{qualname}" if obj is cls else None


# Verdicts on one edge (referrer → child). A hop says how the referrer reaches the
# child, to spell the holder's name later.
_STOP = "stop"  # not a path to old code (a key, a retired namespace, hotmod's own)
_HELD = "held"  # the child belongs to the generations


@dataclass(frozen=True)
class _Pass:
    hop: tuple[str, Any]


@dataclass(frozen=True)
class _Root:
    name: str
    hop: tuple[str, Any]
    kind: str  # see Holding.kind


_Verdict = str | _Pass | _Root


def find_holders(
    targets: Sequence[tuple[str, Any]],
    scope: Scope,
    *,
    max_depth: int = MAX_DEPTH,
    max_frontier: int = MAX_FRONTIER,
    max_nodes: int = MAX_NODES,
) -> list[Holding]:
    """Follow each ``(name, object)`` of ``targets`` up its referrers to the named
    holders outside the generations. Call it right after a garbage collection."""
    # Strong references to every object on a path while the search runs: ids stay
    # valid. These containers are referrers themselves: ``ignore`` knows them.
    nodes: dict[int, Any] = {}
    down: dict[int, tuple[int, tuple[str, Any]]] = {}  # node → (its child, the hop to it)
    origin: dict[int, int] = {}  # node → the target its path leads to
    indexes: dict[int, int] = {}  # target → its index in ``targets``
    frontier: list[Any] = []
    for index, (_name, obj) in enumerate(targets):
        if id(obj) not in nodes:
            nodes[id(obj)] = obj
            indexes[id(obj)] = index
            origin[id(obj)] = id(obj)
            frontier.append(obj)
    old = set(nodes)  # the old code itself: a cache key holding any of it is dead
    counts: dict[int, int] = {}
    found: list[Holding] = []
    ignore = {id(nodes), id(down), id(origin), id(indexes), id(targets), id(found), id(counts)}
    ignore.update(id(pair) for pair in targets)
    for _ in range(max_depth):
        if not frontier:
            break
        ignore.add(id(frontier))
        referrers = gc.get_referrers(*frontier)
        ignore.add(id(referrers))
        front = {id(x) for x in frontier}
        edges: dict[int, list[Any]] = {}
        for ref in referrers:
            if id(ref) in ignore or type(ref) is FrameType:
                continue
            for child in gc.get_referents(ref):
                key = id(child)
                if key in front:
                    holders = edges.setdefault(key, [])
                    if not holders or holders[-1] is not ref:
                        holders.append(ref)
        del referrers
        following: list[Any] = []
        for child in frontier:
            target = origin[id(child)]
            if counts.get(target, 0) >= HOLDERS_PER_OBJECT:
                continue
            refs = edges.get(id(child), ())
            verdicts = [(ref, _judged(ref, child, scope, down, nodes, old)) for ref in refs]
            roots = _canonical([v for _ref, v in verdicts if isinstance(v, _Root)], child)
            if roots:
                for root in roots:
                    if counts.get(target, 0) >= HOLDERS_PER_OBJECT:
                        break
                    holder = _spell(root, id(child), down)
                    index = indexes[target]
                    if all(h.holder != holder or h.index != index for h in found):
                        found.append(Holding(holder, targets[index][0], index, root.kind))
                        counts[target] = counts.get(target, 0) + 1
                continue
            if any(v == _HELD for _ref, v in verdicts):
                continue  # data the generations hold (a clone hook handed it over)
            for ref, v in verdicts:
                if isinstance(v, _Pass) and id(ref) not in nodes and len(nodes) < max_nodes:
                    nodes[id(ref)] = ref
                    down[id(ref)] = (id(child), v.hop)
                    origin[id(ref)] = target
                    following.append(ref)
        del edges
        ignore.discard(id(frontier))
        frontier = following[:max_frontier]
    # Class attributes first: that is where a library looks its configured code up.
    return sorted(found, key=lambda h: (h.index, _KINDS.index(h.kind)))


_KINDS = ("class", "thread", "global")


def _canonical(roots: list[_Root], child: Any) -> list[_Root]:
    """One name for an object that several modules hold as a global (``from
    rest_framework.settings import api_settings`` in twenty modules): the module that
    defines it (or its class) if it is among them, else the shortest name."""
    globals_ = [r for r in roots if r.kind == "global"]
    if len(globals_) < 2:
        return roots
    home = child.__module__ if issubclass(type(child), (type, FunctionType)) else type(child).__module__
    best = min(globals_, key=lambda r: (r.name != home, len(r.name), r.name))
    return [r for r in roots if r not in globals_ or r is best]


def _judged(
    ref: Any, child: Any, scope: Scope, down: dict[int, tuple[int, tuple[str, Any]]],
    nodes: dict[int, Any], old: set[int],
) -> _Verdict:
    try:
        return _judge(ref, child, scope, down, nodes, old)
    except Exception:  # an object of a library's that answers no question: no path
        log.debug("the stale check could not judge a %s", type(ref).__qualname__, exc_info=True)
        return _STOP


def _judge(
    ref: Any, child: Any, scope: Scope, down: dict[int, tuple[int, tuple[str, Any]]],
    nodes: dict[int, Any], old: set[int],
) -> _Verdict:
    """What the edge ``ref → child`` is. Only types are asked (``isinstance`` would
    ask a proxy for its ``__class__``)."""
    kind = type(ref)
    if id(ref) in scope.retired_apps:
        return _STOP
    if issubclass(kind, dict):
        if id(ref) in scope.live:
            return _HELD
        key = _key_of(ref, child)
        if key is _MISSING:
            return _STOP  # a key (or nothing we can name): looked up, never called
        module_name = scope.library.get(id(ref))
        if module_name is not None:
            return _Root(module_name, ("item", key), "global")
        if "__builtins__" in ref and "__name__" in ref:
            return _STOP  # a module namespace outside sys.modules: a retired instance's
        return _Pass(("item", key))
    if issubclass(kind, ModuleType):
        return _STOP  # a module reaches its namespace, which was judged on its own
    if issubclass(kind, type):
        if issubclass(type(child), dict):
            name = scope.named_class(ref)
            return _Root(name, ("ns", None), "class") if name is not None else _Pass(("ns", None))
        # A subclass of old code (through __bases__, __mro__ or __base__): who holds it?
        for attr in ("__bases__", "__mro__", "__base__"):
            if getattr(ref, attr, None) is child:
                return _Pass(("attr", attr))
        return _Pass(("text", ""))
    if _is_hotmod(kind.__module__):
        return _STOP
    if issubclass(kind, (list, tuple, deque)):
        for index, item in enumerate(ref):
            if item is child:
                return _Pass(("index", index))
        return _Pass(("text", "[...]"))
    if issubclass(kind, (set, frozenset)):
        return _Pass(("member", None))
    if issubclass(kind, CellType):
        return _Pass(("cell", None))
    if issubclass(kind, FunctionType):
        if child is ref.__closure__:
            return _Pass(("closure", ref.__code__.co_freevars))
        if child is ref.__defaults__:
            return _Pass(("attr", "__defaults__"))
        if child is ref.__dict__:
            return _Pass(("ns", None))
        return _Pass(("text", ""))
    if issubclass(kind, MethodType):
        return _Pass(("text", "") if child is ref.__func__ else ("attr", "__self__"))
    if issubclass(kind, (staticmethod, classmethod)):
        return _Pass(("text", ""))
    if issubclass(kind, property):
        for part in ("fget", "fset", "fdel"):
            if getattr(ref, part) is child:
                return _Pass(("attr", part))
        return _Pass(("text", ""))
    if _LRU_WRAPPER is not None and issubclass(kind, _LRU_WRAPPER):
        return _judge_cache(ref, child, down, nodes, old)
    if issubclass(kind, threading.Thread):
        hop = _attr_hop(ref, child)
        if ref.is_alive():
            return _Root(f"thread {ref.name!r}", hop, "thread")
        return _Pass(hop)
    return _Pass(_attr_hop(ref, child))


def _judge_cache(
    wrapper: Any, child: Any, down: dict[int, tuple[int, tuple[str, Any]]],
    nodes: dict[int, Any], old: set[int],
) -> _Verdict:
    """An edge out of a ``functools`` cache wrapper: its cached results hold old code
    only when their key does not (an entry keyed by old code answers old code only)."""
    if child is getattr(wrapper, "__wrapped__", None):
        return _Pass(("attr", "__wrapped__"))
    if child is getattr(wrapper, "__dict__", None):
        return _Pass(("ns", None))
    cache, entries = _cache_layout(wrapper)
    if cache is None:
        return _Pass(("cache", _MISSING))  # its keys cannot be told apart: count it
    if child is cache:
        # functools.cache: key → result in the dict itself; the path came through a value.
        below = down.get(id(child))
        value = nodes.get(below[0]) if below is not None else None
        for key, result in list(cache.items()):
            if result is value:
                return _STOP if _holds_any(key, old) else _Pass(("cache", key))
        return _STOP
    if any(key is child for key in list(cache)):
        return _STOP
    for key, result in entries or ():
        if result is child:
            return _STOP if _holds_any(key, old) else _Pass(("cache", key))
    return _Pass(("cache", _MISSING))


def _cache_layout(wrapper: Any) -> tuple[dict[Any, Any] | None, list[tuple[Any, Any]] | None]:
    """The cache dict of an lru_cache wrapper and, for a bounded one, its entries as
    ``(key, result)``: read from what the wrapper shows the collector, which CPython
    (3.11 to 3.14, ``lru_cache_tp_traverse``) lays out as its own type, then each
    link's key, result and type in turn, then the cache dict. Entries are None when
    that layout is not recognised (the caller then counts every result)."""
    referents = gc.get_referents(wrapper)
    entries: list[tuple[Any, Any]] = []
    i = 1
    while i + 2 < len(referents) and _is_link_type(referents[i + 2]):
        entries.append((referents[i], referents[i + 1]))
        i += 3
    cache = referents[i] if i < len(referents) and type(referents[i]) is dict else None
    if cache is None:
        return None, None
    if not any(_is_link_type(type(v)) for v in list(cache.values())):
        return cache, []  # functools.cache (or empty): key → result in the dict itself
    keys = {id(k) for k in list(cache)}
    if len(entries) != len(keys) or any(id(key) not in keys for key, _result in entries):
        return cache, None
    return cache, entries


def _is_link_type(obj: Any) -> bool:
    return type(obj) is type and obj.__name__ == "_lru_list_elem"


def _holds_any(key: Any, old: set[int], depth: int = 3) -> bool:
    if id(key) in old:
        return True
    if depth and issubclass(type(key), (tuple, list, frozenset)):
        return any(_holds_any(part, old, depth - 1) for part in key)
    return False


class _Missing:
    pass


_MISSING = _Missing()


def _key_of(mapping: dict[Any, Any], value: Any) -> Any:
    for key, item in list(mapping.items()):
        if item is value:
            return key
    return _MISSING


def _attr_hop(obj: Any, child: Any) -> tuple[str, Any]:
    """How an object reaches ``child``: its class, its namespace, an attribute. Read
    past any ``__getattr__``/``__getattribute__`` of its class (a proxy's)."""
    kind = type(obj)
    if child is kind:
        return ("instance", None)
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:
        namespace = None
    if child is namespace:
        return ("ns", None)
    if type(namespace) is dict:
        key = _key_of(namespace, child)
        if key is not _MISSING:
            return ("attr", key)
    for cls in kind.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            try:
                if object.__getattribute__(obj, slot) is child:
                    return ("attr", slot)
            except Exception:
                continue
    return ("text", f" (through a {kind.__module__}.{kind.__qualname__} object)")


_THREAD_PARTS = {"_target": " target", "_args": " args", "_kwargs": " kwargs"}


def _spell(root: _Root, child: int, down: dict[int, tuple[int, tuple[str, Any]]]) -> str:
    """The holder's name: the root, then each hop down to the old object."""
    hops = [root.hop]
    while child in down:
        child, hop = down[child]
        hops.append(hop)
    text = root.name
    thread = root.kind == "thread"
    namespace = root.kind == "global"
    closure: tuple[str, ...] = ()
    cached = False
    for kind, value in hops:
        if cached and kind == "item":
            cached = False
            continue  # functools.cache: the key, already said
        if kind == "ns":
            namespace = True
            continue
        if kind in ("item", "attr"):
            if thread and value in _THREAD_PARTS:
                text += _THREAD_PARTS[value]
            elif (namespace or kind == "attr") and type(value) is str and value.isidentifier():
                text += f".{value}"
            else:
                text += f"[{_short(value)}]"
        elif kind == "index":
            if closure and value < len(closure):
                text += f" (closure variable {closure[value]!r})"
            else:
                text += f"[{value}]"
        elif kind == "instance":
            text += ".__class__"
        elif kind == "member":
            text += " (a member)"
        elif kind == "cache":
            text += " (cached result)" if value is _MISSING else f" (cached result for {_short(value)})"
        elif kind == "text":
            text += value
        closure = value if kind == "closure" else ()
        cached = kind == "cache"
        namespace = False
        thread = False
    return text


def _short(key: Any, limit: int = 60) -> str:
    try:
        text = repr(key)
    except Exception:  # a key's own __repr__ that fails
        text = f"<a {type(key).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_hotmod(module_name: str) -> bool:
    return module_name == "hotmod" or module_name.startswith("hotmod.")
