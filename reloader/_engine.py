"""The engine: loads a target, plans reloads, swaps generations, retires and purges."""

from __future__ import annotations

import ast
import gc
import heapq
import inspect
import itertools
import logging
import os
import re
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, FunctionType, ModuleType
from typing import Any

from ._extension import Extension, restart_flag
from ._generation import CURRENT, DRAINING, RETIRED, Generation
from ._graph import Graph, resolve_refs, static_imports
from ._loader import TOKEN, InstanceToken, Source, Stage, find_spec_quietly, quiet
from ._loader import active_stage as _active_stage
from ._roots import ExtraGlobs, Roots
from .errors import HotmodError, LoadFailure, ReloadError, SourceChanged, TargetError

log = logging.getLogger("hotmod")

_TARGET = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)(?P<call>\(\))?$")

#: Engines alive in this process (for fork hooks and for sharing sys.modules).
_engines: weakref.WeakSet[Reloader] = weakref.WeakSet()
#: Files modified less than this long before they were read are always re-hashed.
_RACY_SECONDS = 2.0
#: Staging touches sys.modules: one stage at a time in the process, whatever engine.
_staging_lock = threading.RLock()
#: Bumped in every forked child; an engine compares it with the value it last saw.
_fork_epoch = [0]


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


@dataclass
class _Replaced:
    """An instance that a generation no longer holds, waiting for every generation
    that held it or its clone lineage (numbers ``since`` to ``until - 1``) to retire."""

    module: ModuleType
    name: str
    born: int  # the generation that created it
    until: int
    purge: bool  # nothing was handed over: its __mp_purge__ is due
    #: The oldest generation whose resources it may hold: its clone lineage starts
    #: there (a clone shares what its donor opened), so its purge waits for that too.
    since: int = 0


def parse_target(target: str) -> tuple[str, str, bool]:
    match = _TARGET.match(target.strip())
    if match is None:
        raise TargetError(
            f"target {target!r} is not of the form 'package.module:attribute' or"
            " 'package.module:factory()'"
        )
    return match["module"], match["attr"], bool(match["call"])


def default_root(module: str) -> Path:
    """The top-level package's own folder, or the folder of a single-module target."""
    top = module.partition(".")[0]
    spec = find_spec_quietly(top, retry=False)
    if spec is None:
        raise TargetError(
            f"cannot find module {top!r} (searched sys.path: {', '.join(sys.path[:4])}, ...);"
            " run from the folder that holds it, or add that folder to PYTHONPATH"
        )
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin and spec.has_location:
        return Path(spec.origin).parent
    raise TargetError(f"module {top!r} is built in or has no source file: it cannot be reloaded")


class _Janitor:
    """One background thread that runs retirements, purges and leak checks, so that
    no hook ever runs on a request thread or while a request's lock is held."""

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


class Reloader:
    """Loads a WSGI target from watched roots and reloads what changes into fresh
    module objects, one atomic generation at a time.

    :param target: ``"package.module:attribute"`` or ``"package.module:factory()"``.
    :param roots: watched roots; default: the target's top-level package folder (the
        module's folder for a single-module target). Roots inside the standard
        library or site-packages are refused with :class:`ValueError`.
    :param exclude: glob patterns (matched against the path relative to its root and
        against the file name) of files never reloaded.
    :param extra: glob patterns of non-Python files whose change reloads the modules
        that opened them while executing (or the target's module if none did).
    :param drain_warning: seconds after which a generation still draining is logged
        once as a WARNING (and published as a ``drain_warning`` event).
    :param drain_timeout: seconds after which a generation still draining is retired
        anyway and its due purge hooks run; ``None`` (default) waits forever.
    :param leak_check_delay: seconds between a retirement and the garbage collection
        that checks its replaced instances are gone.
    :param factory_args: positional arguments for a ``factory()`` target, and
    :param factory_kwargs: keyword arguments for it: the factory is called as
        ``factory(*factory_args, **factory_kwargs)`` for every generation that
        re-executes its module (a PasteDeploy ``app_factory`` takes
        ``(global_config, **settings)``). Each call gets fresh shallow copies of dict
        arguments, so a factory that edits its settings cannot leak that into the next
        generation. Given with a target that is not a factory: :class:`ValueError`.
    """

    def __init__(
        self,
        target: str,
        *,
        roots: Sequence[str | os.PathLike[str]] | None = None,
        exclude: Sequence[str] = (),
        extra: Sequence[str] = (),
        drain_warning: float | None = 60.0,
        drain_timeout: float | None = None,
        leak_check_delay: float = 1.0,
        history: int = 50,
        factory_args: Sequence[Any] = (),
        factory_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self._module_name, self._attr, self._call = parse_target(target)
        if (factory_args or factory_kwargs) and not self._call:
            raise ValueError(
                f"factory_args and factory_kwargs need a factory target ('module:factory()'),"
                f" not {target!r}"
            )
        self._factory_args = tuple(factory_args)
        self._factory_kwargs = dict(factory_kwargs or {})
        for name, value in (("drain_warning", drain_warning), ("drain_timeout", drain_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if leak_check_delay < 0:
            raise ValueError(f"leak_check_delay must be >= 0, not {leak_check_delay!r}")
        if roots is None:
            roots = [default_root(self._module_name)]
        self.roots = Roots(roots, exclude=exclude)
        self.exclude = tuple(exclude)
        self._extra = ExtraGlobs(extra, self.roots.paths)
        self.extra = self._extra.patterns
        self.drain_warning = drain_warning
        self.drain_timeout = drain_timeout
        self.leak_check_delay = leak_check_delay

        # Serializes load/reload/close, and is held across fork() so that no child
        # inherits a half-swapped sys.modules. Re-entrant: module code may fork.
        self._reload_lock = threading.RLock()
        # Guards the fields below it; never held while user code runs.
        self._state_lock = threading.Lock()
        self._current: Generation | None = None
        self._live: dict[int, Generation] = {}
        self._replaced: list[_Replaced] = []
        self._born: dict[str, int] = {}
        self._lineage: dict[str, int] = {}  # name → start of its clone lineage
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        # The latest leaks only (the status serves them whole); "leaks" counts them all.
        self._leaked: deque[dict[str, Any]] = deque(maxlen=history)
        self._counts = dict.fromkeys(
            ("reloads", "failures", "retired", "purges", "purge_errors", "clone_errors", "leaks"), 0
        )
        self._pending: set[str] = set()
        self._attempted: set[str] = set()  # modules of the latest plan (reload path)
        self._leak_watch: list[tuple[str, int, weakref.ref[ModuleType], Any, int]] = []
        # Owned by the reload path (under _reload_lock).
        self._graph = Graph()
        # A copy of the graph's edges, published with each generation under _state_lock,
        # so that graph() never waits on a reload (a plan may run slow module code).
        self._published_deps: dict[str, frozenset[str]] = {}
        self._files: dict[str, str] = {}  # module name → real path of its file
        self._paths: dict[str, str] = {}  # real path → module name
        self._digests: dict[str, str | None] = {}  # module name → content hash loaded
        self._signatures: dict[str, tuple[int, int, int]] = {}
        self._read_at: dict[str, float] = {}  # module name → time.time() of the read
        self._readers: dict[str, set[str]] = {}  # extra file → modules that opened it
        self._children: dict[str, set[str]] = {}  # package → its loaded submodules
        self._empty_seen: dict[str, tuple[int, int, int]] = {}
        self._extensions: list[Extension] = []
        # Importer → modules it loaded by name (importlib, a framework's include):
        # no statement names them, so they are kept across the importer's re-runs.
        self._by_name: dict[str, set[str]] = {}
        self._loaded_at = time.time()  # wall time the latest plan began to run
        # Content hashes of restart-only edits already reported: not reported again.
        self._restart_digests: dict[str, str] = {}
        # Written by the reload path under _state_lock; None until a restart is needed.
        self._restart: dict[str, Any] | None = None
        # Written from any thread (atomic set/dict operations), read by the reload path.
        self._tops: dict[str, bool] = {}
        # (name, importer or None, time.time()) of modules loaded at request time.
        self._strays: set[tuple[str, str | None, float]] = set()

        self.last_error: LoadFailure | None = None
        self._subscribers: list[Callable[[ReloadEvent], None]] = []
        self._frozen = False
        self._closed = False
        self._watcher: Any = None
        self._watch_options: dict[str, Any] | None = None
        self._epoch = _fork_epoch[0]
        self._janitor = _Janitor(f"hotmod-janitor-{id(self):x}")
        self._purged: weakref.WeakSet[ModuleType] = weakref.WeakSet()
        self._purge_lock = threading.Lock()  # one purge at a time, each instance once
        _engines.add(self)
        _observe_imports()

    def __repr__(self) -> str:
        gen = self._current
        state = "closed" if self._closed else ("frozen" if self._frozen else "open")
        number = gen.number if gen is not None else "-"
        return f"<Reloader {self.target!r} generation {number} {state}>"

    # -- public API ---------------------------------------------------------------

    @property
    def current(self) -> Generation:
        """The current generation (raises :class:`HotmodError` before :meth:`load`)."""
        gen = self._current
        if gen is None:
            raise HotmodError(f"{self!r} has no generation yet: call load() first")
        return gen

    @property
    def frozen(self) -> bool:
        return self._frozen

    def load(self) -> Generation:
        """Import the target as generation 1 (idempotent)."""
        with self._reload_lock:
            self._check_open()
            if self._current is not None:
                return self._current
            failure = _failure_of(
                lambda: self._run_plan([self._module_name], {}, set(), changed=set(), first=True)
            )
            if failure is None:
                return self.current
        if failure.type == "ModuleNotFoundError" and failure.file is None:
            raise TargetError(f"cannot import target module {self._module_name!r}: {failure.message}")
        raise ReloadError(failure)

    def reload(self, paths: Iterable[str | os.PathLike[str]] | None = None) -> int:
        """Reload synchronously and return the current generation's number.

        With no ``paths``, finds changed module files itself (stat signature, then
        content hash). Paths given are reloaded even if their content is unchanged.
        Raises :class:`ReloadError` if the plan failed (nothing changes then).
        """
        if paths is None:
            try:
                return self._reload(None, force=False)
            except SourceChanged as exc:
                log.info("%s; it will be loaded once it is complete", exc)
                return self.current.number
        wanted = [os.fspath(p) for p in paths]
        for attempt in range(3):
            try:
                return self._reload(wanted, force=True)
            except SourceChanged:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def acquire(self) -> Generation:
        """Enter the current generation for one request; pair with ``exit()``."""
        for _ in range(1000):
            gen = self._current
            if gen is None:
                raise HotmodError(f"{self!r} has no generation: call load() first")
            if gen.enter():
                return gen
            if self._closed:
                raise HotmodError(f"{self!r} is closed")
        raise HotmodError("could not enter a generation: reloads are retiring them continuously")

    def subscribe(self, fn: Callable[[ReloadEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` after each reload, failure, retirement, leak and drain
        warning/timeout. Returns a function that unsubscribes."""
        self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            self._subscribers = [f for f in self._subscribers if f is not fn]

        return unsubscribe

    def freeze(self) -> None:
        """Stop reloading on file changes; changes are kept as pending until thaw()."""
        self._frozen = True

    def thaw(self) -> int:
        """Resume reloading and load what changed while frozen."""
        self._frozen = False
        with self._state_lock:
            pending, self._pending = self._pending, set()
        if not pending:
            return self.current.number
        return self._reload(sorted(pending), force=False)

    def graph(self) -> dict[str, list[str]]:
        """Each reloadable module of the current generation → the modules it imports.

        Never waits on a reload: it reads what was published with the current generation."""
        with self._state_lock:
            deps, present = self._published_deps, self.current.modules
        return {m: sorted(d for d in ds if d in present) for m, ds in sorted(deps.items())}

    def imports(self) -> set[str]:
        """Every module name the current generation's modules import, reloadable or
        not (their import statements, and what they imported while executing)."""
        with self._reload_lock:
            return {dep for name in self.current.modules for dep in self._graph.deps(name)}

    def files(self) -> dict[Path, str]:
        with self._reload_lock:
            return {Path(p): name for p, name in self._paths.items()}

    def extend(self, extension: Extension) -> None:
        """Add an extension (see :class:`reloader.Extension`): its roots are watched and
        the modules already loaded from them join the current generation; its extra
        globs are watched; its hooks run on every later plan. Call it after
        :meth:`load`, before :meth:`watch` (a running watcher is restarted)."""
        with self._reload_lock:
            self._check_open()
            if self._current is None:
                raise HotmodError(f"{self!r} has no generation yet: call load() before extend()")
            self._extensions.append(extension)
            new_roots = [r for r in map(os.path.realpath, extension.roots()) if not self.roots.root_of(r)]
            if new_roots:
                # A new root may hold an old one (the project around a package): one
                # watch per tree.
                kept = [r for r in self.roots.paths
                        if not any(r.startswith(n.rstrip(os.sep) + os.sep) for n in new_roots)]
                self.roots = Roots([*kept, *new_roots], exclude=self.exclude)
                self._tops.clear()  # a top-level name may lie in a new root
                self._adopt_loaded(self.roots.paths)
            self._extra = ExtraGlobs(
                (*self.extra, *(p for p in extension.extra() if p not in self.extra)), self.roots.paths
            )
            self.extra = self._extra.patterns
            if self._watcher is not None and (new_roots or extension.extra()):
                options = self._watch_options or {}
                self.unwatch()
                self.watch(**options)

    @property
    def extensions(self) -> tuple[Extension, ...]:
        return tuple(self._extensions)

    @property
    def restart_needed(self) -> dict[str, Any] | None:
        """``{"reason", "modules", "files", "time"}`` once a restart-only module changed
        (the edit is not served until the process restarts), else None."""
        restart = self._restart  # replaced whole, never changed in place: no lock
        return dict(restart) if restart is not None else None

    def stats(self) -> dict[str, Any]:
        with self._state_lock:
            gen = self._current
            draining = [
                {
                    "generation": g.number,
                    "in_flight": g.in_flight,
                    "since": None if g.superseded_at is None else
                    time.time() - (time.monotonic() - g.superseded_at),
                }
                for g in sorted(self._live.values(), key=lambda g: g.number)
                if g.state == DRAINING
            ]
            return {
                "generation": gen.number if gen is not None else 0,
                "frozen": self._frozen,
                "closed": self._closed,
                "pending": sorted(self._pending),
                "draining": draining,
                "history": list(self._history),
                "leaked": list(self._leaked),
                "last_error": self.last_error.as_dict() if self.last_error else None,
                "restart_needed": dict(self._restart) if self._restart is not None else None,
                **self._counts,
            }

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until due retirements, purges and leak checks have run."""
        return self._janitor.wait_idle(timeout)

    # -- watching -----------------------------------------------------------------

    def watch(self, **options: Any) -> None:
        """Start the file watcher (see :class:`reloader.Watcher` for ``options``);
        its reloads run on the watcher's one dispatch thread."""
        from ._watcher import Watcher

        with self._reload_lock:
            self._check_open()
            if self._watcher is not None:
                return
            self._watch_options = dict(options)
            self._watcher = Watcher(
                list(self.roots.paths),
                on_change=self._on_batch,
                extra=self.extra,
                exclude=self.exclude,
                **options,
            )
            self._watcher.start()
            self._catch_up()

    def unwatch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    @property
    def watcher(self) -> Any:
        return self._watcher

    def check_fork(self) -> bool:
        """Cheap. In a forked child (first call after fork) restart the watcher and
        reload what changed since the parent loaded it. True if a fork was handled."""
        if self._epoch == _fork_epoch[0]:
            return False
        with self._reload_lock:
            if self._epoch == _fork_epoch[0]:
                return False
            self._epoch = _fork_epoch[0]
            self._watcher = None  # its threads did not survive fork()
            # The child dropped the requests it inherited (see _after_fork_child): a
            # generation that was draining may be drained now.
            with self._state_lock:
                draining = [g for g in self._live.values() if g.state == DRAINING]
            for gen in draining:
                gen._maybe_retire()
            if self._watch_options is not None and not self._closed:
                self.watch(**self._watch_options)  # which also catches up
        return True

    def _catch_up(self) -> None:
        """Hand the watcher the files that changed since they were loaded while no
        watcher ran (before it started, or in the parent before fork): no event will
        come for them. They then go through the watcher's checks like any save,
        rather than being read here while an editor may be writing them."""
        with self._reload_lock:
            changed, deleted, _ = self._find_changed(None, force=False, probe=True)
            paths = [self._files[n] for n in sorted(changed | deleted) if n in self._files]
        if paths and self._watcher is not None:
            log.info("%d file(s) changed while no watcher ran: reloading them", len(paths))
            self._watcher.touched(paths)

    def _on_batch(self, batch: Any) -> None:
        try:
            self._reload(
                sorted(batch.paths),
                force=False,
                still_valid=batch.still_valid,
                empty_ok=batch.closed,
            )
        except SourceChanged as exc:
            log.debug("%s; retrying after the tree settles", exc)
            batch.retry()
        except ReloadError:
            pass  # logged and published by _reload
        except HotmodError as exc:
            log.warning("%s", exc)

    # -- shutdown -----------------------------------------------------------------

    def close(self) -> None:
        """Retire every generation and purge the current one, importers before the
        modules they import; stop the watcher and the janitor. Twice is harmless."""
        with self._reload_lock:
            if self._closed:
                return
            self._closed = True
        self.unwatch()
        self._janitor.stop()
        with self._state_lock:
            live = sorted(self._live.values(), key=lambda g: g.number)
            current = self._current
        order = self._graph.order(current.modules) if current is not None else []
        modules = current.modules if current is not None else {}
        for gen in live:
            gen._force_retire()
        self._retire(live, leak_check=False)
        for name in reversed(order):
            module = modules.get(name)
            if module is not None:
                self._purge(module, name)
        with self._state_lock:
            self._live.clear()
        self._forget_sys_modules(modules)
        _engines.discard(self)

    def _forget_sys_modules(self, modules: Any) -> None:
        """Point ``sys.modules`` at another live engine's instance where one exists,
        so that closing one engine never breaks another one serving the same app."""
        others = [e for e in list(_engines) if e is not self and e._current is not None]
        for name, module in modules.items():
            if sys.modules.get(name) is not module:
                continue
            for other in others:
                replacement = other._current.modules.get(name) if other._current else None
                if replacement is not None:
                    sys.modules[name] = replacement
                    break
            else:
                del sys.modules[name]

    def _check_open(self) -> None:
        if self._closed:
            raise HotmodError(f"{self!r} is closed")

    # -- reloading ----------------------------------------------------------------

    def _reload(
        self,
        paths: Sequence[str] | None,
        *,
        force: bool,
        still_valid: Callable[[], bool] | None = None,
        empty_ok: Collection[Path | str] = (),
    ) -> int:
        result: list[int] = []
        failure = _failure_of(
            lambda: result.append(self._reload_locked(paths, force, still_valid, empty_ok))
        )
        if failure is not None:
            raise ReloadError(failure)
        return result[0]

    def _reload_locked(
        self,
        paths: Sequence[str] | None,
        force: bool,
        still_valid: Callable[[], bool] | None,
        empty_ok: Collection[Path | str],
    ) -> int:
        with self._reload_lock:
            self._check_open()
            if self._current is None:
                self.load()
            if self._frozen and not force:
                changed = self._find_changed(paths, force=False, empty_ok=empty_ok, probe=True)
                with self._state_lock:
                    self._pending.update(self._files.get(n, n) for n in changed[0] | changed[1])
                return self.current.number
            if paths is not None and self._extensions:
                paths = self._refresh(paths)
                if not paths:
                    return self.current.number
            changed_names, deleted, sources = self._find_changed(paths, force, empty_ok)
            if not changed_names and not deleted:
                self._clear_reverted_failure()
                return self.current.number
            plan = self._plan(changed_names | deleted)
            plan = [m for m in plan if m not in deleted]
            for name in changed_names:
                if name not in plan:
                    plan.append(name)  # a stray adopted in this reload
            reasons = self._restart_reasons(plan)
            if reasons:
                self._report_restart(reasons, changed_names | deleted, sources)
                return self.current.number
            self._attempted = changed_names | deleted
            return self._run_plan(plan, sources, deleted, changed=changed_names, still_valid=still_valid)

    def _plan(self, changed: set[str]) -> list[str]:
        """The graph's plan, grown by what extensions add (with their importers)."""
        modules = self.current.modules
        plan = self._graph.plan(changed, modules)
        wanted = set(changed)
        for extension in self._extensions:
            more = {m for m in extension.expand_plan(plan, dict(modules)) if m in modules}
            if more - set(plan):
                wanted |= more
                plan = self._graph.plan(wanted, modules)
        return plan

    def _restart_reasons(self, plan: Sequence[str]) -> dict[str, str]:
        """Module → why loading it afresh needs a restart, for the restart-only
        modules of ``plan`` (its own ``__hotmod_restart__`` flag, or an extension)."""
        modules = self.current.modules
        reasons: dict[str, str] = {}
        for name in plan:
            module = modules.get(name)
            reason = restart_flag(module) if module is not None else None
            for extension in self._extensions:
                if reason is not None:
                    break
                reason = extension.restart_reason(name, self._files.get(name, ""))
            if reason is not None:
                reasons[name] = reason
        return reasons

    def _report_restart(self, reasons: dict[str, str], changed: set[str], sources: dict[str, Source]) -> None:
        """Nothing is swapped: the last generation keeps serving, and everyone is told
        that this edit needs a restart, and why."""
        for name in changed:
            source = sources.get(name)
            if source is not None:
                self._restart_digests[name] = source.digest
        files = tuple(sorted(self._files.get(n, n) for n in changed))
        detail = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
        number = self.current.number
        with self._state_lock:
            before = self._restart
            self._restart = {
                "reason": detail if before is None else f"{before['reason']}; {detail}",
                "modules": sorted({*(before or {}).get("modules", ()), *reasons}),
                "files": sorted({*(before or {}).get("files", ()), *files}),
                "time": time.time(),
            }
        log.warning(
            "restart needed: %s changed, and %s; generation %d keeps serving the code"
            " loaded before this edit",
            ", ".join(files), detail, number, extra={"hotmod_event": "restart_needed"},
        )
        self._publish(ReloadEvent(
            "restart_needed", number, tuple(sorted(reasons)), detail=detail, files=files,
        ))

    def _refresh(self, paths: Sequence[str]) -> list[str]:
        """Hand changed non-Python files to the extensions; return what is left."""
        named = [os.fspath(p) for p in paths]
        others = [p for p in named if p.endswith(".py")]
        rest = [p for p in named if not p.endswith(".py")]
        handled: list[str] = []
        for extension in self._extensions:
            if not rest:
                break
            try:
                done = set(extension.refresh(list(rest)))
            except Exception:
                log.error("extension %s failed to refresh %s:\n%s", extension.name,
                          ", ".join(rest), traceback.format_exc())
                continue
            handled += [p for p in rest if p in done]
            rest = [p for p in rest if p not in done]
        if handled:
            number = self.current.number
            log.info("generation %d: refreshed %s", number, ", ".join(handled))
            self._publish(ReloadEvent("refreshed", number, files=tuple(handled),
                                      detail=", ".join(handled)))
        return others + rest

    def _clear_reverted_failure(self) -> None:
        """A failed edit undone (the files are back to what the current generation
        loaded) is no failure any more, although nothing needs loading."""
        if self.last_error is None or not self._attempted:
            return
        for name in self._attempted:
            path = self._files.get(name)
            try:
                if path is None or Source.read(path).digest != self._digests.get(name):
                    return
            except (OSError, SourceChanged):
                return
        log.info("the failed edit was undone: generation %d is up to date", self.current.number)
        self.last_error = None
        self._attempted = set()
        self._publish(ReloadEvent("recovered", self.current.number))

    def _find_changed(
        self,
        paths: Sequence[str] | None,
        force: bool,
        empty_ok: Collection[Path | str] = (),
        probe: bool = False,
    ) -> tuple[set[str], set[str], dict[str, Source]]:
        """Map changed files to module names: (changed, deleted, sources read)."""
        self._adopt_strays()
        if paths is None:
            names: set[str] = set(self._files)
            force = False
        else:
            names = set()
            for path in paths:
                real = os.path.realpath(path)
                name = self._paths.get(real)
                if name is not None:
                    names.add(name)
                else:
                    # Code is only ever loaded from the roots; a config file outside
                    # them counts when an absolute extra pattern names it.
                    root = self.roots.root_of(real)
                    if root is not None:
                        wanted = self.roots.contains(real) and (
                            real in self._readers or self._extra.match(real, root)
                        )
                    else:
                        wanted = self._extra.match(real, None)
                    if wanted:
                        names.update(self._readers.get(real) or {self._module_name})
                        force = True  # the module's own source did not change
        empty = {os.path.realpath(p) for p in empty_ok}
        changed: set[str] = set()
        deleted: set[str] = set()
        sources: dict[str, Source] = {}
        for name in sorted(names):
            known = self._files.get(name)
            if known is None:
                continue
            path = known
            try:
                if not force and paths is None:
                    st = os.stat(path)
                    same = (st.st_size, st.st_mtime_ns, st.st_ino) == self._signatures.get(name)
                    # A file modified within the mtime tick of its read may have changed
                    # again in that tick with the same size (git's "racy clean"): hash it.
                    racy = self._read_at.get(name, 0.0) - st.st_mtime_ns / 1e9 < _RACY_SECONDS
                    if same and not racy:
                        continue
                if not self.roots.contains(path):
                    self._left_roots(name, path)
                    continue
                source = Source.read(path)
            except FileNotFoundError:
                deleted.add(name)
                continue
            if not force and source.digest in (self._digests.get(name), self._restart_digests.get(name)):
                self._signatures[name] = source.signature
                self._read_at[name] = time.time()
                continue
            if probe:
                changed.add(name)
                continue
            if not source.data and self._signatures.get(name, (0,))[0] > 0 and path not in empty:
                # Non-empty before, empty now: most likely an in-place save between its
                # truncate and its write. Believe it only when seen twice in one state.
                if self._empty_seen.get(path) != source.signature:
                    self._empty_seen[path] = source.signature
                    raise SourceChanged(f"{path} is empty (a write in progress?)")
            self._empty_seen.pop(path, None)
            changed.add(name)
            sources[name] = source
        return changed, deleted, sources

    def _left_roots(self, name: str, path: str) -> None:
        """``path`` now leads outside the roots (it became a symlink, or a folder on the
        way did): its code is never loaded, and the current instance stays. Its new
        signature is noted so that a scan does not report it again and again."""
        st = os.stat(path)
        self._signatures[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
        self._read_at[name] = time.time()
        log.warning(
            "%s now leads to %s, outside the watched roots: it is not loaded;"
            " %s keeps the instance it has", path, os.path.realpath(path), name,
        )

    def _adopt_strays(self) -> None:
        """Take into the registry the reloadable modules that were imported at request
        time outside any reload (by the normal machinery, by whatever means): each is
        a dependency of the module whose code imported it, or of the target when no
        reloadable code was running (a framework importing a URLconf by name)."""
        strays: list[tuple[str, str | None, float]] = []
        while True:  # set.pop() is atomic: request threads may add while this drains
            try:
                strays.append(self._strays.pop())
            except KeyError:
                break
        gen = self._current
        if gen is None or gen._modules is None:
            return
        for name, importer, at in sorted(strays, key=lambda s: s[2]):
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None)
            if module is None or not file or not self.roots.contains(file):
                continue
            if name not in gen._modules:
                gen._modules[name] = module  # shared from here on, as if loaded with it
                self._register_adopted(name, module, gen.number, at)
            self._note_by_name(importer or self._module_name, [name])
        if strays:
            self._publish_graph()

    def _adopt_loaded(self, roots: Sequence[str]) -> None:
        """Take into the current generation the modules already in ``sys.modules``
        whose files lie in ``roots`` (roots added after the load): a framework loaded
        them by name, so the target depends on them unless an import statement of
        another reloadable module says who does."""
        gen = self._current
        if gen is None or gen._modules is None:
            return
        found = {}
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if (isinstance(module, ModuleType) and file and name not in gen._modules
                    and self.roots.contains(file) and file.endswith(".py")):
                found[name] = module
        for name, module in sorted(found.items()):
            gen._modules[name] = module
            self._register_adopted(name, module, gen.number, self._loaded_at)
        imported = {d for name in found for d in self._graph.deps(name)}
        self._note_by_name(self._module_name, [n for n in found if n not in imported])
        self._publish_graph()

    def _publish_graph(self) -> None:
        """Publish the graph's edges for :meth:`graph` after a change made outside a
        swap (which publishes them with the new generation)."""
        with self._state_lock:
            self._published_deps = dict(self._graph._deps)

    def _note_by_name(self, importer: str, names: Iterable[str]) -> None:
        """Record that ``importer`` loaded ``names`` by name: edges kept across its re-runs."""
        names = {n for n in names if n != importer}
        if not names:
            return
        self._by_name.setdefault(importer, set()).update(names)
        self._graph.set_deps(importer, self._graph.deps(importer) | names)

    def _register_adopted(self, name: str, module: ModuleType, number: int, since: float) -> None:
        """Registry entry of a module loaded past the engine: its file, the edges of its
        import statements, and what it was loaded from. The content counts as what was
        loaded only when the file has not been modified since ``since`` (when its load
        may have begun); otherwise it is unknown, and any look at it reloads it."""
        real = os.path.realpath(module.__file__ or "")
        self._files[name], self._paths[real] = real, name
        self._children.setdefault(name.rpartition(".")[0], set()).add(name)
        self._born[name] = number
        self._digests[name], self._signatures[name] = None, (-1, -1, -1)
        try:
            source = Source.read(real)
        except (OSError, SourceChanged):
            return
        if source.signature[1] / 1e9 < since:
            self._digests[name], self._signatures[name] = source.digest, source.signature
            self._read_at[name] = source.read_at
        try:
            tree = ast.parse(source.data, filename=real)
        except (SyntaxError, ValueError):
            return
        refs = static_imports(tree, name, hasattr(module, "__path__"))
        self._graph.set_deps(name, resolve_refs(refs, _is_loaded_module) | self._by_name.get(name, set()))

    def _adopt_imported(self, stage: Stage) -> None:
        """Take into the new generation the reloadable modules that the plan's code
        loaded past its ``__import__`` (``importlib.import_module``, for one): they
        become reloadable too. Their importers are not known, since no import
        statement names them (see docs/hooks.md)."""
        if not stage.grew_past_own():
            return  # the usual case: no scan of sys.modules, so reloads stay O(plan)
        for name, module in list(sys.modules.items()):
            if name in stage.table or not self._is_own_top(name.partition(".")[0]):
                continue
            file = getattr(module, "__file__", None)
            if isinstance(module, ModuleType) and file and self.roots.contains(file):
                stage.table[name] = module
                stage.adopted[name] = module

    def _run_plan(
        self,
        plan: list[str],
        sources: dict[str, Source],
        deleted: set[str],
        *,
        changed: set[str],
        still_valid: Callable[[], bool] | None = None,
        first: bool = False,
    ) -> int:
        started = time.perf_counter()
        self._loaded_at = time.time()
        base_gen = self._current
        base: dict[str, ModuleType] = dict(base_gen._modules or {}) if base_gen else {}
        table = dict(base)
        for name in deleted:
            table.pop(name, None)
        number = (base_gen.number + 1) if base_gen else 1
        gen = Generation(number, table, on_drained=self._on_drained)
        stage = Stage(self, gen, base, table, sources, self._files, deleted)
        with _staging_lock:
            number = self._stage_and_swap(
                stage, gen, base, plan, deleted, changed, still_valid, first, started
            )
        # Only now may the old generation retire: this frame no longer holds its
        # instances, so its leak check cannot mistake them for leaked.
        del stage, base, table, gen
        if base_gen is not None:
            base_gen._supersede()
            if base_gen.state == DRAINING:
                self._schedule_drain_checks(base_gen)
        return number

    def _stage_and_swap(
        self,
        stage: Stage,
        gen: Generation,
        base: dict[str, ModuleType],
        plan: list[str],
        deleted: set[str],
        changed: set[str],
        still_valid: Callable[[], bool] | None,
        first: bool,
        started: float,
    ) -> int:
        number = gen.number
        base_gen = self._current
        try:
            try:
                for extension in self._extensions:
                    extension.before_plan(plan)
                stage.run(plan)
                target = self._resolve_target(stage, base_gen)
                self._adopt_imported(stage)
                stage.validate()
                # The watcher compares the files with their state at the cut, so a save
                # whose events still lag behind the file counts too.
                if still_valid is not None and not still_valid():
                    raise SourceChanged("files changed while the plan was loading")
            except SourceChanged:
                self._discard(stage, plan)
                raise
            except (Exception, SystemExit) as exc:
                self._discard(stage, plan)
                if first and isinstance(exc, TargetError):
                    raise
                failure = LoadFailure.from_exception(
                    exc, stage.failed_module or self._module_name, self.roots.contains
                )
                self._fail(failure, number, started)
                raise ReloadError(failure) from None
        except BaseException:
            if stage.importer.stage is not None:  # KeyboardInterrupt and the like
                self._discard(stage, plan)
            raise
        gen.target = target
        self._swap(stage, gen, base, deleted, changed, started)
        for extension in self._extensions:
            try:
                extension.after_swap(gen, plan)
            except Exception:
                log.error("extension %s failed after generation %d was swapped in:\n%s",
                          extension.name, number, traceback.format_exc())
        return number

    def _resolve_target(self, stage: Stage, base_gen: Generation | None) -> Any:
        module = stage.table.get(self._module_name)
        if module is None and self._module_name in sys.modules:
            file = getattr(sys.modules[self._module_name], "__file__", None)
            raise TargetError(
                f"target module {self._module_name!r} ({file}) lies outside the watched roots"
                f" {list(self.roots.paths)}: it could never be reloaded"
            )
        if module is None:
            raise ModuleNotFoundError(f"no module named {self._module_name!r}", name=self._module_name)
        if base_gen is not None and self._module_name not in stage.fresh:
            return base_gen.target
        obj: Any = module
        for part in self._attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise TargetError(
                    f"module {self._module_name!r} ({module.__file__}) has no attribute"
                    f" {self._attr!r}"
                ) from None
        if self._call:
            if not callable(obj):
                raise TargetError(f"{self._module_name}:{self._attr} is not callable")
            factory = obj
            args = [dict(a) if isinstance(a, dict) else a for a in self._factory_args]
            kwargs = {k: dict(v) if isinstance(v, dict) else v for k, v in self._factory_kwargs.items()}
            _check_factory(factory, self._module_name, self._attr, args, kwargs)
            obj = stage.call(lambda: factory(*args, **kwargs))
        if not callable(obj):
            raise TargetError(
                f"{self.target} is a {type(obj).__name__}, not a WSGI application (not callable)"
            )
        return obj

    def _discard(self, stage: Stage, plan: Sequence[str]) -> None:
        """Throw a failed plan away: sys.modules back as it was; fresh instances that
        were not cloned purged at once (a plan's half-opened resources would leak)."""
        stage.rollback()
        for extension in self._extensions:
            try:
                extension.after_discard(plan)
            except Exception:
                log.error("extension %s failed to undo a discarded plan:\n%s",
                          extension.name, traceback.format_exc())
        for name, module in reversed(list(stage.fresh.items())):
            if name not in stage.cloned:
                self._purge(module, name)

    def _fail(self, failure: LoadFailure, number: int, started: float) -> None:
        with self._state_lock:
            self._counts["failures"] += 1
        if number == 1:
            log.error("loading %s failed: %s", self.target, failure)
        else:
            log.error("reload failed, generation %d stays current: %s", number - 1, failure)
        # Set after the log line, so whoever sees the error can find its record too.
        self.last_error = failure
        self._publish(ReloadEvent(
            "failed", number - 1, duration_ms=(time.perf_counter() - started) * 1000,
            failure=failure, detail=str(failure),
        ))

    def _swap(
        self,
        stage: Stage,
        gen: Generation,
        base: dict[str, ModuleType],
        deleted: set[str],
        changed: set[str],
        started: float,
    ) -> None:
        number = gen.number
        table = stage.table
        # Registry and graph first (only the reload path reads them).
        for name in stage.fresh:
            self._children.setdefault(name.rpartition(".")[0], set()).add(name)
            source = stage.sources[name]
            real = os.path.realpath(source.path)
            self._files[name], self._paths[real] = real, name
            self._digests[name], self._signatures[name] = source.digest, source.signature
            self._read_at[name] = source.read_at
            self._graph.set_deps(
                name,
                resolve_refs(stage.refs.get(name, ()), stage.is_module) | self._by_name.get(name, set()),
            )
        for name in deleted:
            self._children.get(name.rpartition(".")[0], set()).discard(name)
            if name in self._files:
                self._paths.pop(self._files.pop(name), "")
            self._digests.pop(name, "")
            self._signatures.pop(name, (0, 0, 0))
            if name in self._graph._deps:
                self._graph.remove(name)
        # Each re-executed module's readings replace its previous ones, so that a module
        # opening a new file name on every load (a temporary file) grows nothing.
        gone = set(stage.fresh) | deleted
        for path in list(self._readers):
            readers = self._readers[path] - gone
            if readers:
                self._readers[path] = readers
            else:
                del self._readers[path]
        for path, readers in stage.opened.items():
            self._readers.setdefault(path, set()).update(readers)
        for name, module in stage.adopted.items():
            self._register_adopted(name, module, number, self._loaded_at)
        for importer, names in stage.by_name.items():
            self._note_by_name(importer, names)
        stage.importer.stage = None
        with self._state_lock:
            # Package attributes: fresh children on shared parents; shared children on
            # fresh parents (a re-executed __init__ lost them).
            for name, module in stage.fresh.items():
                parent_name, _, child = name.rpartition(".")
                parent = table.get(parent_name) or sys.modules.get(parent_name)
                if parent is not None:
                    setattr(parent, child, module)
            for package in (n for n, m in stage.fresh.items() if hasattr(m, "__path__")):
                for name in self._children.get(package, ()):
                    if name in table:
                        setattr(table[package], name.rpartition(".")[2], table[name])
            for name in deleted:
                old = base.get(name)
                if sys.modules.get(name) is old:
                    del sys.modules[name]
                parent_name, _, child = name.rpartition(".")
                parent = table.get(parent_name)
                if parent is not None and getattr(parent, child, None) is old:
                    delattr(parent, child)
            previous = self._current
            for name in list(stage.fresh) + sorted(deleted):
                old = base.get(name)
                if old is not None:
                    born = self._born.get(name, 1)
                    self._replaced.append(_Replaced(
                        old, name, born, number, purge=name not in stage.cloned,
                        since=self._lineage.get(name, born),
                    ))
            for name in stage.fresh:
                self._born[name] = number
                if name not in stage.cloned:
                    self._lineage[name] = number
            for name in deleted:
                self._born.pop(name, None)
                self._lineage.pop(name, None)
            gen._make_current()
            self._live[number] = gen
            self._current = gen
            self._published_deps = dict(self._graph._deps)
            self.last_error = None
            self._counts["reloads"] += 0 if previous is None else 1
            self._counts["clone_errors"] += len(stage.clone_failed)
            duration = (time.perf_counter() - started) * 1000
            exec_ms = stage.exec_s * 1000
            importers = len([n for n in stage.fresh if n not in changed]) if previous else 0
            self._history.append({
                "time": time.time(), "generation": number, "modules": list(stage.fresh),
                "importers": importers, "duration_ms": round(duration, 3),
                "exec_ms": round(exec_ms, 3),
            })
        unreached = (
            [] if previous is None else
            sorted(n for n in changed if not self._graph.reaches(n, self._module_name, table))
        )
        kind, detail = "reloaded", f"{len(deleted)} deleted" if deleted else ""
        if previous is None:
            log.info("generation 1: loaded %s (%d modules) in %.1f ms",
                     self.target, len(stage.fresh), duration)
        elif unreached:
            kind = "unreached"
            detail = (
                f"the served target {self._module_name} does not import {', '.join(unreached)},"
                " directly or through its imports, by statement or by name: it runs their"
                " new code only if it looks them up itself"
            )
            log.warning("generation %d: loaded %s in %.1f ms, but %s",
                        number, ", ".join(stage.fresh), duration, detail,
                        extra={"hotmod_event": "unreached"})
        else:
            log.info(
                "generation %d: reloaded %s (%d importers%s) in %.1f ms",
                number, ", ".join(stage.fresh) or "nothing", importers,
                f", {len(deleted)} deleted" if deleted else "", duration,
            )
        self._publish(ReloadEvent(
            kind, number, tuple(stage.fresh), importers, duration, detail=detail, exec_ms=exec_ms,
        ))

    # -- retirement ----------------------------------------------------------------

    def _on_drained(self, gen: Generation) -> None:
        """Called by whoever saw a superseded generation drain (often a request
        thread): the work goes to the janitor."""
        self._janitor.submit(lambda: self._retire([gen]))

    def _schedule_drain_checks(self, gen: Generation) -> None:
        ref = weakref.ref(gen)
        if self.drain_warning is not None:
            self._janitor.submit(
                lambda: self._drain_check(ref, timeout=False), self.drain_warning, timer=True
            )
        if self.drain_timeout is not None:
            self._janitor.submit(
                lambda: self._drain_check(ref, timeout=True), self.drain_timeout, timer=True
            )

    def _drain_check(self, ref: weakref.ref[Generation], *, timeout: bool) -> None:
        gen = ref()
        if gen is None or gen.state != DRAINING:
            return
        waited = time.monotonic() - (gen.superseded_at or time.monotonic())
        if timeout:
            if gen._force_retire():
                log.warning(
                    "generation %d still had %d requests in flight after %.0f s: retiring it"
                    " anyway (drain_timeout) and running its due purge hooks",
                    gen.number, gen.in_flight, waited,
                )
                self._publish(ReloadEvent("drain_timeout", gen.number, detail=f"{gen.in_flight} in flight"))
                self._retire([gen])
        else:
            log.warning(
                "generation %d has been draining for %.0f s with %d requests in flight"
                " (a stream or long poll?); its purge hooks wait until they end%s",
                gen.number, waited, gen.in_flight,
                "" if self.drain_timeout is None else f" or until drain_timeout={self.drain_timeout}s",
            )
            self._publish(ReloadEvent("drain_warning", gen.number, detail=f"{gen.in_flight} in flight"))

    def _live_generations(self) -> list[Generation]:
        return sorted(self._live.values(), key=lambda g: g.number)

    def _retire(self, gens: list[Generation], *, leak_check: bool = True) -> None:
        """Post-retirement work: forget the generations, run due purges of instances
        no live generation holds any more, schedule the leak check."""
        with self._state_lock:
            for gen in gens:
                if self._live.get(gen.number) is gen and gen is not self._current:
                    del self._live[gen.number]
                    self._counts["retired"] += 1
                elif gen is self._current and not self._closed:
                    continue
                gen._release()
            live = [g.number for g in self._live.values()]
            held = [r for r in self._replaced if any(r.since <= n < r.until for n in live)]
            free = [r for r in self._replaced if not any(r.since <= n < r.until for n in live)]
            self._replaced = held
        for record in free:
            if record.purge:
                self._purge(record.module, record.name)
        # After the purges: a subscriber told "retired" may rely on them having run.
        for gen in gens:
            self._publish(ReloadEvent("retired", gen.number))
        if leak_check and free:
            watch = [(r.name, r.born, weakref.ref(r.module), _token_ref(r.module), 0) for r in free]
            del free
            with self._state_lock:
                # One collection covers every retirement queued before it runs.
                schedule = not self._leak_watch
                self._leak_watch.extend(watch)
            if schedule:
                self._janitor.submit(self._leak_check, self.leak_check_delay)

    def _purge(self, module: ModuleType, name: str) -> None:
        hook = vars(module).get("__mp_purge__")
        if not callable(hook):
            return
        with self._purge_lock:
            if module in self._purged:
                return
            self._purged.add(module)
        try:
            if _takes_one_argument(hook):
                hook(module)
            else:
                hook()
            with self._state_lock:
                self._counts["purges"] += 1
        except Exception:
            with self._state_lock:
                self._counts["purge_errors"] += 1
            # The traceback as text: a handler that keeps records (a test's log capture,
            # an error reporter) must not keep the instance alive through its frames.
            log.error("__mp_purge__ of %s raised:\n%s", name, traceback.format_exc())

    def _leak_check(self) -> None:
        with self._state_lock:
            watch, self._leak_watch = self._leak_watch, []
        gc.collect()
        again = []
        for name, born, module_ref, token_ref, checks in watch:
            token = token_ref() if token_ref is not None else None
            if module_ref() is None and token is None:
                continue
            if checks == 0:
                # Something may hold it for a moment yet (a thread leaving a frame):
                # only an instance alive at a second look is reported.
                again.append((name, born, module_ref, token_ref, 1))
                continue
            where = _describe_holders(token) if token is not None else "the module object is referenced"
            record = {"generation": born, "module": name, "referrers": where}
            with self._state_lock:
                self._leaked.append(record)
                self._counts["leaks"] += 1
            log.warning(
                "leak: instance of %s from generation %d is still alive after retirement: %s",
                name, born, where,
            )
            self._publish(ReloadEvent("leaked", born, (name,), detail=where))
        if again:
            with self._state_lock:
                schedule = not self._leak_watch
                self._leak_watch.extend(again)
            if schedule:
                self._janitor.submit(self._leak_check, max(self.leak_check_delay, 0.2))

    # -- helpers used by the import hook -------------------------------------------

    def _is_own_top(self, top: str) -> bool:
        hit = self._tops.get(top)
        if hit is None:
            hit = self._classify_top(top)
            if hit is not None:
                self._tops[top] = hit
        return bool(hit)

    def _classify_top(self, top: str) -> bool | None:
        module = sys.modules.get(top)
        if module is not None:
            file = getattr(module, "__file__", None)
            if file:
                return self.roots.contains(file)
            return any(self.roots.root_of(os.path.realpath(p)) for p in getattr(module, "__path__", ()))
        spec = find_spec_quietly(top, retry=False)
        if spec is None:
            return None  # not found now: do not cache, it may be created later
        if spec.origin and spec.has_location:
            return self.roots.contains(spec.origin)
        return any(self.roots.root_of(os.path.realpath(p))
                   for p in spec.submodule_search_locations or ())

    def _note_stray(self, name: str, importer: str | None = None, at: float | None = None) -> None:
        self._strays.add((name, importer, time.time() if at is None else at))

    def _loading_by_name(self, name: str, importer: str | None) -> None:
        """The import system is about to load ``name`` (one of ours) past the engine's
        ``__import__``: ``importlib.import_module``, a framework's scanner or include.
        ``importer`` is the module whose code is running, if any."""
        stage = _active_stage()
        if stage is not None and stage.engine is self:
            if importer is not None:
                stage.by_name.setdefault(importer, set()).add(name)
            return
        self._note_stray(name, importer)

    def _publish(self, event: ReloadEvent) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("hotmod event subscriber %r raised", fn)


def _check_factory(
    fn: Callable[..., Any],
    module: str,
    attr: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Refuse ``module:attr()`` where ``attr`` cannot be called with no arguments (or with
    the factory arguments given): it is most likely the application itself
    (``app(environ, start_response)``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (a builtin): just call it
        return
    try:
        signature.bind(*args, **(kwargs or {}))
    except TypeError as exc:
        if args or kwargs:
            raise TargetError(
                f"cannot call {module}:{attr}{signature} with the factory arguments: {exc}"
            ) from None
        if next(iter(signature.parameters), "") in ("global_config", "global_conf"):
            raise TargetError(
                f"target '{module}:{attr}()' is a PasteDeploy app factory {attr}{signature}:"
                f" serve the .ini file that names it (hotmod serve development.ini)"
            ) from None
        raise TargetError(
            f"target '{module}:{attr}()' calls {attr}{signature} with no arguments, which it"
            f" does not accept: it is not an app factory; to serve {attr} itself, drop the"
            f" '()': '{module}:{attr}'"
        ) from None


def _is_loaded_module(name: str) -> bool:
    return isinstance(sys.modules.get(name), ModuleType)


def _failure_of(fn: Callable[[], object]) -> LoadFailure | None:
    """Run ``fn``; return the failure of a ReloadError it raised, dropping that
    exception: its traceback holds the failed stage's frames, and with them the
    instances of the generation it was built on. Callers raise a fresh ReloadError
    instead, so that keeping the error never keeps an old generation alive."""
    try:
        fn()
    except ReloadError as exc:
        return exc.failure
    return None


def _token_ref(module: ModuleType) -> weakref.ref[InstanceToken] | None:
    token = vars(module).get(TOKEN)
    return weakref.ref(token) if isinstance(token, InstanceToken) else None


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def _describe_holders(token: InstanceToken, limit: int = 4) -> str:
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


class _ImportObserver:
    """First on ``sys.meta_path``: it finds nothing, but sees every module that the
    import system really loads, however it was asked (``import``,
    ``importlib.import_module``, ``__import__``, a framework's scanner). For a module
    of an engine's roots it tells that engine, naming the reloadable module whose code
    is running (the innermost such frame), so that the module joins the graph as
    that module's dependency, or the target's when only framework code runs."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if quiet():
            return
        top = name.partition(".")[0]
        for engine in list(_engines):
            if engine._closed or not engine._is_own_top(top):
                continue
            engine._loading_by_name(name, _running_module(engine.roots, name))

    def __repr__(self) -> str:
        return "<hotmod import observer>"


def _running_module(roots: Roots, loading: str) -> str | None:
    """The module whose code is importing ``loading``: the innermost frame inside the
    roots (importlib's and hotmod's own frames are outside them)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith("<") and roots.contains(file):
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and name != loading:
                return name
        frame = frame.f_back
    return None


_OBSERVER = _ImportObserver()


def _observe_imports() -> None:
    """Put the observer first on ``sys.meta_path`` (again, if a finder was inserted
    before it: one that claims a module would hide that import from it)."""
    if sys.meta_path[:1] != [_OBSERVER]:
        if _OBSERVER in sys.meta_path:
            sys.meta_path.remove(_OBSERVER)
        sys.meta_path.insert(0, _OBSERVER)


def _before_fork() -> None:
    for engine in list(_engines):
        engine._reload_lock.acquire()


def _after_fork_parent() -> None:
    for engine in list(_engines):
        engine._reload_lock.release()


def _after_fork_child() -> None:
    _fork_epoch[0] += 1
    for engine in list(_engines):
        engine._reload_lock.release()
        # Locks another thread held at fork time stay held forever in the child.
        engine._state_lock = threading.Lock()
        engine._purge_lock = threading.Lock()
        engine._janitor.after_fork()
        for gen in list(engine._live.values()):
            gen._after_fork_in_child()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
)

__all__ = ["CURRENT", "RETIRED", "ReloadEvent", "Reloader"]
