"""How hotmod sees the imports it did not make.

The engine loads a plan's modules itself (``_loader.Stage``). Everything else
that loads or reads a module of the roots goes past it, and would leave the
engine with an incomplete graph or a stale table. Four devices see it, each for
one way around the engine, all in this module:

* **the per-instance** ``__import__`` (:class:`GenerationImport`). Every instance
  hotmod creates gets a ``__builtins__`` of its own generation, whose
  ``__import__`` resolves reloadable modules to that generation's instances. Old
  code keeps its own modules: a function-level ``import`` or ``from . import x``
  running later (a function called) in a draining generation gets that
  generation's instances, never the newest ones nor a half-built one from a
  reload in progress. A plan's new code gets the new instances, relative imports
  included, although shared package objects still name the old ones until the
  swap (``sys.modules`` names each new instance from the moment its code begins
  to run: docs/concurrency.md, *What a request sees*). And dependencies are recorded from each import a module
  makes while it executes. Where a shared package object's attribute names
  another generation's instance than the one an import should yield, the import
  returns a :class:`ModuleView`: the package seen with that attribute replaced.
* **the** ``sys.meta_path`` **observer** (:class:`ImportObserver`), first on the
  meta path: it finds nothing, but sees every module the import system really
  loads, however it was asked (``importlib.import_module``, a framework's
  scanner or ``include()``). A module of an engine's roots becomes a dependency
  of the reloadable module whose code is running, or of the target.
* **the** ``open`` **audit hook**: the non-Python files a module opens while it
  executes (templates, settings) reload it when they change.
* **the** ``exec`` **audit hook** (:func:`_refuse_reexecution`): code of the roots
  executed again into the namespace of a module that a live generation holds (or
  that it serves until the next reload adopts it), outside any plan (a framework's
  own reloader calling ``importlib.reload``, as web.py's debug mode does on every
  request), is refused before it runs, with one
  WARNING naming who did it: a generation is immutable, so that the requests
  pinned to it run the code it was built from (docs/concurrency.md, *What a
  request sees*). Only execs of a ``.py`` file of an open engine's roots, outside
  a plan, are looked at: nothing on a request's path.
* **the** ``sys.modules`` **scan** (:func:`modules_in_roots`): modules loaded
  before a root was added, or past the per-instance ``__import__`` during a plan.
  Scanning is O(``sys.modules``), so it runs only when something says it must.

What they see for one engine goes to its :class:`ImportSight`: which top-level
names are its own, and the modules imported outside any plan (strays), which
``_adopt`` takes into the registry at the next reload. The loader is handed
that sight as its :class:`Host`, the narrow interface it needs, never the engine.
"""

from __future__ import annotations

import builtins
import importlib.util
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any, NamedTuple, Protocol

from ._generation import Generation
from ._roots import Roots

log = logging.getLogger("hotmod.imports")

_MISSING = object()

#: Name of the token every instance holds in its globals (an ``_loader.InstanceToken``):
#: a weak reference to it tells whether the instance's namespace is still alive after
#: retirement, and its presence tells an instance's namespace from any other dict.
TOKEN = "__hotmod_instance__"

#: This thread's running stage (read by the audit hook and the observer) and
#: whether it is looking a module up for hotmod itself.
_active = threading.local()


class Host(Protocol):
    """What loading needs from the engine it loads for (an :class:`ImportSight`)."""

    @property
    def roots(self) -> Roots:
        """The watched roots: a module file inside them is reloadable."""

    def is_own_top(self, top: str) -> bool:
        """Whether modules under the top-level name ``top`` are reloadable."""

    def note_stray(self, name: str) -> None:
        """``name`` (reloadable) was imported outside any plan: adopt it at the next one."""

    def table_holding(self, namespace: Mapping[str, Any] | None) -> Mapping[str, ModuleType]:
        """The instances of a live generation that holds the instance whose globals
        are ``namespace`` (the current generation's when none does)."""


class Stage(Protocol):
    """What the devices here need of the plan being loaded (``_loader.Stage``)."""

    host: Host  # the sight of the engine it loads for
    pending: set[str]  # planned modules not loaded yet
    deleted: set[str]  # modules the plan removes
    by_name: dict[str, set[str]]  # importer -> modules it loaded by name

    def import_new(self, name: str) -> Any:
        """Load ``name`` into the new generation (or normally, if not reloadable)."""

    def owns(self, module: Any) -> bool:
        """Whether ``module`` is one of the plan's fresh instances."""

    def record(self, importer: str | None, absname: str, fromlist: Any) -> None:
        """``importer``'s code imported ``absname`` (an edge of the graph)."""

    def is_reloadable_module(self, name: str, parent: Any) -> bool:
        """Whether ``name``, a child of package ``parent``, is a module file in the roots."""

    def note_open(self, path: str) -> None:
        """The module executing now opened ``path``."""

    def app_starts(self) -> None:
        """The app's own code runs again (its clock resumes)."""

    def app_stops(self) -> bool:
        """The engine's code runs; True if the app's clock was running."""


class Stray(NamedTuple):
    """A reloadable module imported outside any plan, waiting to be adopted."""

    name: str
    importer: str | None  # the reloadable module whose code imported it; None: the target
    at: float  # time.time() when it was imported


class ImportSight:
    """One engine's view of the imports it did not make: which top-level names are
    its own, and the strays. Written from any thread (single dict and set
    operations, atomic), read by the engine's reload path."""

    def __init__(
        self,
        roots: Roots,
        *,
        current: Callable[[], Generation],
        live: Callable[[], list[Generation]],
    ) -> None:
        self._roots = roots  # replaced by the engine's reload path (extend())
        self._current = current
        self._live = live
        self.closed = False  # set once by the engine's close()
        self._tops: dict[str, bool] = {}  # top-level name -> ours?
        self._strays: set[Stray] = set()
        _sights.add(self)
        observe_imports()

    @property
    def roots(self) -> Roots:
        return self._roots

    def set_roots(self, roots: Roots) -> None:
        """The engine's roots changed: a top-level name may now lie in a new root."""
        self._roots = roots
        self._tops.clear()

    def close(self) -> None:
        self.closed = True
        _sights.discard(self)

    def is_own_top(self, top: str) -> bool:
        """Whether modules under the top-level name ``top`` are reloadable."""
        hit = self._tops.get(top)
        if hit is None:
            hit = self._classify_top(top)
            if hit is not None:
                self._tops[top] = hit
        return bool(hit)

    def note_stray(self, name: str, importer: str | None = None, at: float | None = None) -> None:
        """``name`` was imported outside any plan: adopted at the next reload."""
        self._strays.add(Stray(name, importer, time.time() if at is None else at))

    def take_strays(self) -> list[Stray]:
        """The strays noted so far, oldest first; they are noted no more."""
        strays: list[Stray] = []
        while True:  # set.pop() is atomic: other threads may add while this drains
            try:
                strays.append(self._strays.pop())
            except KeyError:
                break
        return sorted(strays, key=lambda s: s.at)

    def table_holding(self, namespace: Mapping[str, Any] | None) -> Mapping[str, ModuleType]:
        name = namespace.get("__name__") if namespace is not None else None
        for live in self._live():
            mods = live.table
            if mods is not None and name in mods and vars(mods[name]) is namespace:
                return mods
        return self._current().modules

    def holder(self, module: ModuleType) -> Generation | None:
        """The live generation holding ``module``: one whose table has it, or else the
        current one when ``sys.modules`` names it and its file lies in the roots (it
        was loaded past the engine, by name: the next reload adopts it into the current
        generation, which serves it meanwhile)."""
        name = module.__name__
        for live in self._live():
            mods = live.table
            if mods is not None and mods.get(name) is module:
                return live
        file = getattr(module, "__file__", None)
        if sys.modules.get(name) is module and isinstance(file, str) and self._roots.contains(file):
            return self._current()
        return None

    def _classify_top(self, top: str) -> bool | None:
        module = sys.modules.get(top)
        if module is not None:
            file = getattr(module, "__file__", None)
            if file:
                return self._roots.contains(file)
            return any(self._roots.root_of(os.path.realpath(p)) for p in getattr(module, "__path__", ()))
        spec = find_spec_quietly(top, retry=False)
        if spec is None:
            return None  # not found now: do not cache, it may be created later
        if spec.origin and spec.has_location:
            return self._roots.contains(spec.origin)
        return any(self._roots.root_of(os.path.realpath(p))
                   for p in spec.submodule_search_locations or ())

    def loading_by_name(self, name: str, importer: str | None) -> None:
        """The import system is about to load ``name`` (one of ours) past the engine's
        ``__import__``: ``importlib.import_module``, a framework's scanner or include.
        ``importer`` is the module whose code is running, if any."""
        stage = active_stage()
        if stage is not None and stage.host is self:
            if importer is not None:
                stage.by_name.setdefault(importer, set()).add(name)
            return
        self.note_stray(name, importer)

    def __repr__(self) -> str:
        return f"<hotmod import sight of {self._roots!r}>"


#: The sights of the open engines, for the observer.
_sights: weakref.WeakSet[ImportSight] = weakref.WeakSet()

class ModuleView:
    """A module seen with some attributes replaced (see the module docstring).

    Reads go to the replacement or else to the module; writes go to the module.
    ``isinstance(view, ModuleType)`` holds, since ``__class__`` is the module's.
    """

    __slots__ = ("_hm_module", "_hm_overrides")

    def __init__(self, module: Any, overrides: dict[str, Any]) -> None:
        object.__setattr__(self, "_hm_module", module)
        object.__setattr__(self, "_hm_overrides", overrides)

    def __getattribute__(self, name: str) -> Any:
        overrides = object.__getattribute__(self, "_hm_overrides")
        if name in overrides:
            value = overrides[name]
            if value is _MISSING:
                raise AttributeError(name)
            return value
        module = object.__getattribute__(self, "_hm_module")
        if name == "__dict__":
            merged = {**vars(module), **overrides}
            return {k: v for k, v in merged.items() if v is not _MISSING}
        return getattr(module, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_hm_module"), name, value)

    def __dir__(self) -> list[str]:
        return sorted(self.__dict__)

    def __repr__(self) -> str:
        module = object.__getattribute__(self, "_hm_module")
        return f"<view of {module!r}>"


def _absolute(name: str, globals: Mapping[str, Any] | None, level: int) -> str:
    package = None
    if globals is not None:
        package = globals.get("__package__")
        if package is None:
            spec = globals.get("__spec__")
            if spec is not None:
                package = spec.parent
            else:
                package = globals.get("__name__", "")
                if "__path__" not in globals:
                    package = package.rpartition(".")[0]
    if not package:
        raise ImportError("attempted relative import with no known parent package")
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        raise ImportError("attempted relative import beyond top-level package")
    return f"{bits[0]}.{name}" if name else bits[0]


class GenerationImport:
    """The ``__import__`` of the instances created for one generation."""

    __slots__ = ("_gen", "_host", "stage")

    def __init__(self, generation: Generation, host: Host, stage: Stage) -> None:
        self._gen = weakref.ref(generation)
        self._host = weakref.ref(host)
        self.stage: Stage | None = stage  # None once the generation is swapped in

    def __call__(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        absname = _absolute(name, globals, level) if level else name
        host = self._host()
        if host is None or not host.is_own_top(absname.partition(".")[0]):
            return builtins.__import__(name, globals, locals, fromlist, level)
        stage = self.stage
        # Resolving one of our modules is the engine's time, not the app's.
        app_running = stage is not None and stage.app_stops()
        try:
            return self._import_own(host, absname, globals, fromlist)
        finally:
            if app_running:
                assert stage is not None
                stage.app_starts()

    def _import_own(
        self, host: Host, absname: str, globals: Mapping[str, Any] | None, fromlist: Any
    ) -> Any:
        gen = self._gen()
        modules = gen.table if gen is not None else None
        table: Mapping[str, ModuleType] = (
            modules if modules is not None else self._table(host, globals)
        )
        stage = self.stage
        if stage is not None and globals is not None:
            stage.record(globals.get("__name__"), absname, fromlist)
        module = self.resolve(absname, table, stage, host)
        if fromlist:
            overrides: dict[str, Any] | None = None
            for item in fromlist:
                if item == "*" or not isinstance(item, str):
                    continue
                full = f"{absname}.{item}"
                if stage is not None and full in stage.deleted:
                    overrides = overrides or {}
                    overrides[item] = _MISSING  # deleted by this plan: gone for its code
                    continue
                sub = self._submodule(full, module, item, table, stage, host)
                if sub is not None and getattr(module, item, _MISSING) is not sub:
                    if stage is not None and stage.owns(module):
                        setattr(module, item, sub)
                    else:
                        overrides = overrides or {}
                        overrides[item] = sub
            return ModuleView(module, overrides) if overrides else module
        if "." not in absname:
            return module
        return self._chain(absname, table, stage, host)

    def _table(self, host: Host, globals: Mapping[str, Any] | None) -> Mapping[str, ModuleType]:
        gen = self._gen()
        modules = gen.table if gen is not None else None
        if modules is not None:
            return modules
        # The generation that created this instance has retired but the instance lives
        # on, shared by a later one: resolve against a live generation holding it.
        return host.table_holding(globals)

    def resolve(
        self, name: str, table: Mapping[str, ModuleType], stage: Stage | None, host: Host
    ) -> Any:
        module = table.get(name)
        if module is not None and (stage is None or name not in stage.pending):
            return module
        if stage is not None:
            return stage.import_new(name)
        # Outside any reload (a function-level import, run later, of a module no
        # generation holds yet): the normal machinery loads it; the next reload adopts it.
        builtins.__import__(name)
        host.note_stray(name)
        return sys.modules[name]

    def _submodule(
        self,
        name: str,
        parent: Any,
        item: str,
        table: Mapping[str, ModuleType],
        stage: Stage | None,
        host: Host,
    ) -> Any:
        """The module ``from parent import item`` binds, or None when ``item`` is a
        plain attribute (or nothing: the bytecode then raises ImportError)."""
        module = table.get(name)
        if module is not None and (stage is None or name not in stage.pending):
            return module
        if not getattr(parent, "__path__", None):
            return None  # only packages have submodules
        if stage is not None and (name in stage.pending or stage.is_reloadable_module(name, parent)):
            return stage.import_new(name)
        if hasattr(parent, item):
            return None
        # As Python's own fromlist handling: try the submodule, a missing one is no error.
        try:
            builtins.__import__(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                return None
            raise
        if stage is None:
            host.note_stray(name)
        return sys.modules.get(name)

    def _chain(
        self, absname: str, table: Mapping[str, ModuleType], stage: Stage | None, host: Host
    ) -> Any:
        """``import a.b.c`` returns ``a``; make ``a.b.c`` reach this generation's ``c``."""
        obj: Any = self.resolve(absname, table, stage, host)
        top, _, rest = absname.partition(".")
        # The common case: every attribute along the chain already is this generation's.
        node: Any = table.get(top)
        if node is not None and (stage is None or top not in stage.pending):
            for child in rest.split("."):
                node = getattr(node, child, None)
                if node is None:
                    break
            if node is obj:
                return table[top]
        parts = absname.split(".")
        for i in range(len(parts) - 1, 0, -1):
            parent = self.resolve(".".join(parts[:i]), table, stage, host)
            child = parts[i]
            if getattr(parent, child, _MISSING) is obj:
                obj = parent
            elif stage is not None and stage.owns(parent) and not isinstance(obj, ModuleView):
                setattr(parent, child, obj)
                obj = parent
            else:
                obj = ModuleView(parent, {child: obj})
        return obj



class ImportObserver:
    """First on ``sys.meta_path``: it finds nothing, but sees every module that the
    import system really loads, however it was asked. For a module of an engine's
    roots it tells that engine's sight, naming the reloadable module whose code is
    running (the innermost such frame), so that the module joins the graph as that
    module's dependency, or the target's when only framework code runs."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if quiet():
            return
        top = name.partition(".")[0]
        sights = [s for s in list(_sights) if not s.closed and s.is_own_top(top)]
        if target is not None and sights and active_stage() is None:
            # Only importlib.reload() passes the module it is about to re-execute:
            # refuse it here, before it replaces the instance's __spec__ and __loader__.
            if isinstance(target, ModuleType):
                _refuse_if_held(target, sights, sys._getframe(1))
        for sight in sights:
            sight.loading_by_name(name, _running_module(sight.roots, name))

    def __repr__(self) -> str:
        return "<hotmod import observer>"


def _running_module(roots: Roots, loading: str) -> str | None:
    """The module whose code is importing ``loading``: the innermost frame inside the
    roots (importlib's and hotmod's own frames are outside them)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        file = frame.f_code.co_filename
        if roots.contains(file):  # a pseudo-file (<frozen importlib._bootstrap>) is never inside
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and name != loading:
                return name
        frame = frame.f_back
    return None


_OBSERVER = ImportObserver()


def observe_imports() -> None:
    """Put the observer first on ``sys.meta_path`` (again, if a finder was inserted
    before it: one that claims a module would hide that import from it)."""
    if sys.meta_path[:1] != [_OBSERVER]:
        if _OBSERVER in sys.meta_path:
            sys.meta_path.remove(_OBSERVER)
        sys.meta_path.insert(0, _OBSERVER)


def modules_in_roots(
    roots: Roots, skip: Callable[[str], bool], is_own_top: Callable[[str], bool] | None = None
) -> dict[str, ModuleType]:
    """The modules of ``sys.modules`` loaded from a ``.py`` file inside ``roots``,
    but those ``skip`` names; ``is_own_top`` rules out other top-level names first."""
    found: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        if skip(name) or (is_own_top is not None and not is_own_top(name.partition(".")[0])):
            continue
        file = getattr(module, "__file__", None)
        if isinstance(module, ModuleType) and file and file.endswith(".py") and roots.contains(file):
            found[name] = module
    return found


def enter_stage(stage: Stage | None) -> Stage | None:
    """Make ``stage`` this thread's running stage; return the one it replaces (to be
    handed back: an engine created while another one loads must restore it)."""
    outer, _active.stage = active_stage(), stage
    return outer


def active_stage() -> Stage | None:
    """The stage running on this thread, if any."""
    return getattr(_active, "stage", None)


def quiet() -> bool:
    """Whether this thread is looking a module up for hotmod itself (not loading it)."""
    return bool(getattr(_active, "quiet", False))


def find_spec_quietly(name: str, path: Any = None, *, retry: bool = True) -> ModuleSpec | None:
    """Ask ``sys.meta_path`` for ``name``'s spec without it counting as an import."""
    was, _active.quiet = quiet(), True
    try:
        for attempt in range(2 if retry else 1):
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(name, path, None)
                if spec is not None:
                    return spec  # type: ignore[no-any-return]
            if attempt == 0:
                importlib.invalidate_caches()  # a module created a moment ago
        return None
    finally:
        _active.quiet = was


#: (``file:line (function)``, module name) already named in a WARNING for
#: re-executing an instance in place: each pair is named once per process.
_reexecuted_from: set[tuple[str, Any]] = set()


def _instance_in(frame: FrameType | None) -> ModuleType | None:
    """The instance (hotmod-made) whose namespace is among the locals of ``frame``, the
    frame that called ``exec``: importlib's ``_call_with_frames_removed(exec, code,
    module.__dict__)`` holds it in its ``args``, a reloader of its own in a local
    (``module``, ``module.__dict__``). Found through the instance's token."""
    if frame is None:
        return None
    for value in list(frame.f_locals.values()):
        for item in value if isinstance(value, tuple) else (value,):
            namespace = vars(item) if isinstance(item, ModuleType) else item
            if isinstance(namespace, dict) and TOKEN in namespace:
                module = sys.modules.get(namespace.get("__name__", ""))
                if module is not None and vars(module) is namespace:
                    return module
                return _module_holding(namespace)
    return None


def _module_holding(namespace: Mapping[str, Any]) -> ModuleType | None:
    """The instance of a live generation whose globals are ``namespace`` (one that
    ``sys.modules`` no longer names: a draining generation's)."""
    name = namespace.get("__name__")
    for sight in list(_sights):
        for live in sight._live():
            module = (live.table or {}).get(name) if isinstance(name, str) else None
            if module is not None and vars(module) is namespace:
                return module
    return None


def _caller(frame: FrameType | None) -> str:
    """``file:line (function)`` of the first frame outside the import system: who
    asked for the re-execution."""
    while frame is not None:
        file = frame.f_code.co_filename
        if not (file.startswith("<frozen importlib") or file == importlib.__file__):
            return f"{file}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "an unknown caller"


def _refuse_reexecution(code: Any) -> None:
    """Raise ImportError if ``code`` (being ``exec``-ed) is a module of an open engine's
    roots about to run again in the namespace of an instance that one of its live
    generations holds, outside any plan; warn once per caller."""
    file = getattr(code, "co_filename", None)
    if not isinstance(file, str) or not file.endswith(".py") or getattr(_active, "stage", None):
        return
    sights = [s for s in list(_sights) if not s.closed and s.roots.contains(file)]
    if not sights:
        return
    caller = sys._getframe(2)  # 0: this function, 1: the audit hook, 2: exec's caller
    module = _instance_in(caller)
    if module is not None:  # else a fresh namespace (runpy, a config file run into a dict)
        _refuse_if_held(module, sights, caller)


def _refuse_if_held(module: ModuleType, sights: list[ImportSight], caller: FrameType) -> None:
    """Raise ImportError if a live generation of one of ``sights`` holds ``module``;
    the first time ``caller`` does it to that module, a WARNING."""
    for sight in sights:
        gen = sight.holder(module)
        if gen is None:
            continue
        name = module.__name__
        who = _caller(caller)
        if (who, name) not in _reexecuted_from:
            _reexecuted_from.add((who, name))
            log.warning(
                "%s re-executed %s of generation %d in place (a reloader of its own, such as"
                " a framework's debug reloader); refused, so that the requests on generation %d"
                " keep running the code it was built from. hotmod loads each edit into a new"
                " generation: that reloader can be turned off.",
                who, name, gen.number, gen.number,
            )
        raise ImportError(
            f"hotmod: {name} belongs to generation {gen.number}, which is immutable; re-executing"
            f" it in place ({who}) was refused: hotmod loads edits into a new generation",
            name=name,
        )


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        stage = getattr(_active, "stage", None)
        if stage is not None and isinstance(args[0], str):
            stage.note_open(args[0])
    elif event == "exec":
        _refuse_reexecution(args[0])


sys.addaudithook(_audit)
