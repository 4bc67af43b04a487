"""The engine: :class:`Reloader` loads a target and turns batches of changed files
into generations. It holds the public API, the reload lock and the sequence
DESIGN.md draws: find the changes, plan, stage, swap, report. Each step's
knowledge lives in a module of its name: the registry (``_registry``), planning
(``_plan``), loading (``_loader``), the imports the engine did not make
(``_imports``) and the modules it adopts from them (``_adopt``), swapping
(``_swap``), retirement (``_retire``), leak detection (``_leaks``), what it tells
(``_report``), the target (``_target``), fork handling (``_fork``)."""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import _adopt, _plan, _probe, _retire, _swap
from ._events import ReloadEvent
from ._extension import Extension, refresh
from ._fork import forget_fork, fork_epoch, on_fork
from ._generation import Generation
from ._graph import Graph
from ._imports import ImportSight
from ._loader import Source, Stage
from ._registry import Registry
from ._report import Reporter
from ._retire import Retirement
from ._roots import ExtraGlobs, Roots, inside
from ._target import Target, default_root
from .errors import HotmodError, LoadFailure, ReloadError, SourceChanged, TargetError

log = logging.getLogger("hotmod")

#: Engines open in this process: closing one hands sys.modules to another.
_engines: weakref.WeakSet[Reloader] = weakref.WeakSet()
#: Staging touches sys.modules: one stage at a time in the process, whatever engine.
_staging_lock = threading.RLock()


class Reloader:
    """Loads a target from watched roots and reloads what changes into fresh module
    objects, one atomic generation at a time.

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
    :param leak_check_delay: seconds without a retirement before the garbage
        collection that checks the replaced instances are gone (at most ten times
        that after the first retirement waiting, while edits keep coming).
    :param factory_args: positional arguments for a ``factory()`` target, and
    :param factory_kwargs: keyword arguments for it: the factory is called as
        ``factory(*factory_args, **factory_kwargs)`` for every generation that
        re-executes its module (a PasteDeploy ``app_factory`` takes
        ``(global_config, **settings)``). Each call gets fresh shallow copies of dict
        arguments, so a factory that edits its settings cannot leak that into the next
        generation. Given with a target that is not a factory: :class:`ValueError`.
    :param probe: after a plan fails in this process (but not for a ``SyntaxError``,
        nor for the first load, which ran in a fresh process), load the same tree in
        a fresh interpreter: if it loads there, the failure came from state that
        outlives generations, and a ``restart_needed`` replaces the error. Also asked
        about new module files that nothing here imports (a framework may find them
        by name at start-up). Default: on, unless ``HOTMOD_PROBE=0``.
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
        probe: bool | None = None,
    ) -> None:
        self.target = target
        self._target = Target.parse(target, factory_args, factory_kwargs)
        self._module_name = self._target.module
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
        self._pending: set[str] = set()
        # Counters, history and the restart notice, under the same lock.
        self._report = Reporter(target=target, module=self._module_name, keep=history, lock=self._state_lock)

        # Owned by the reload path (under _reload_lock).
        self._registry = Registry()
        self._graph = Graph()
        self._attempted: set[str] = set()  # modules of the latest plan
        self._extensions: list[Extension] = []
        self._loaded_at = time.time()  # wall time the latest plan began to run

        self.last_error: LoadFailure | None = None
        # Whether no plan has been tried yet: the first one runs in a fresh process,
        # so its failure is what a fresh process gives (no probe).
        self._untried = True
        self._probe_on = _probe.enabled() if probe is None else bool(probe)
        self._prober = _probe.Prober(self._run_probe, self._decide_probe, name=f"hotmod-probe-{id(self):x}")
        self._frozen = False
        self._closed = False
        self._watcher: Any = None
        self._watch_options: dict[str, Any] | None = None
        self._epoch = fork_epoch()
        self._retirement = Retirement(
            name=f"hotmod-janitor-{id(self):x}",
            drain_warning=drain_warning,
            drain_timeout=drain_timeout,
            leak_check_delay=leak_check_delay,
            keep=history,
            publish=self._report.events.publish,
            current=lambda: self._current,
            closed=lambda: self._closed,
            extensions=self._extensions,
            reporter=self._report, registry=self._registry,  # stale code: restart, restart-only
        )
        # What this engine sees of the imports it did not make; the loader's Host.
        self._sight = ImportSight(
            self.roots, current=lambda: self.current, live=self._retirement.live_generations
        )
        _engines.add(self)
        on_fork(
            self,
            before=Reloader._before_fork,
            after_in_parent=Reloader._after_fork_in_parent,
            after_in_child=Reloader._after_fork_in_child,
        )

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
                lambda: self._run_plan([self._module_name], _plan.Changes(), first=True)
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
        """Enter the current generation for one caller; pair with ``exit()``."""
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
        return self._report.events.add(fn)

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

        Never waits on a reload: it reads what was published with the current
        generation. Empty before the first generation loaded."""
        with self._state_lock:
            gen = self._current
            deps, present = self._graph.published(), (gen.modules if gen is not None else {})
        return {m: sorted(d for d in ds if d in present) for m, ds in sorted(deps.items())}

    def imports(self) -> set[str]:
        """Every module name the current generation's modules import, reloadable or
        not (their import statements, and what they imported while executing).

        Never waits on a reload: the names are copied at once (a plan running
        meanwhile may already show its own edges)."""
        gen = self._current
        names = list(gen.modules) if gen is not None else []
        return {dep for name in names for dep in self._graph.deps(name)}

    def files(self) -> dict[Path, str]:
        """Each reloadable module's file → its module name. Never waits on a reload
        (the registry is copied in one step)."""
        return {Path(p): name for p, name in self._registry.files().items()}

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
            new_roots = self._add_roots(extension.roots())
            self._extra = ExtraGlobs(
                (*self.extra, *(p for p in extension.extra() if p not in self.extra)), self.roots.paths
            )
            self.extra = self._extra.patterns
            if self._watcher is not None and (new_roots or extension.extra()):
                options = self._watch_options or {}
                self.unwatch()
                self.watch(**options)

    def _add_roots(self, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
        """Add the folders of ``paths`` that no root holds; the new ones. Raises
        ValueError for a folder that may not be a root (the standard library)."""
        new_roots = [r for r in (os.path.realpath(p) for p in paths) if not self.roots.root_of(r)]
        if new_roots:
            # A new root may hold an old one (the project around a package): one
            # watch per tree.
            kept = [r for r in self.roots.paths if not any(inside(r, n) for n in new_roots)]
            self.roots = Roots([*kept, *new_roots], exclude=self.exclude)
            self._sight.set_roots(self.roots)
            if self._current is not None:
                _adopt.loaded(self._current, self.roots, self._registry, self._graph,
                              self._module_name, self._loaded_at)
                self._publish_graph()
        return new_roots

    def add_root_of(self, path: str | os.PathLike[str]) -> str | None:
        """Watch and reload from the folder of the top-level package that holds the
        file ``path`` (its own folder for a plain module), unless a root holds it
        already: for a target that failed to load in a file outside the roots (its
        project folder not known yet), so that the edit that fixes it is seen. The
        root added, or None. Call it before :meth:`watch`."""
        folder = Path(os.path.realpath(path)).parent
        while (folder / "__init__.py").is_file() and (folder.parent / "__init__.py").is_file():
            folder = folder.parent
        with self._reload_lock:
            self._check_open()
            try:
                added = self._add_roots([folder])
            except ValueError as exc:
                log.info("not watching %s: %s", folder, exc)
                return None
        return added[0] if added else None

    @property
    def extensions(self) -> tuple[Extension, ...]:
        return tuple(self._extensions)

    def request_restart(self, reason: str, *, module: str | None = None) -> None:
        """Say that only a process restart serves the code as it now is: the
        ``restart_needed`` notice and event, as for a restart-only edit (``hotmod
        serve`` restarts; ``HotReload`` elsewhere shows its restart page)."""
        number = self._current.number if self._current is not None else 0
        self._report.restart({module or self._module_name: reason}, (), number)

    @property
    def coroutine_runner(self) -> Callable[[Awaitable[Any]], Any]:
        """What runs an ``async def __mp_purge__`` to its end: a callable that takes the
        awaitable, blocks until it is done and returns its result (or raises its
        exception). Purges run on the janitor thread, or on :meth:`close`'s caller.
        The default awaits it in a new event loop on that thread; the ASGI middleware
        sets one that runs it on the server's loop, where the resources were opened."""
        return self._retirement.run_coroutine

    @coroutine_runner.setter
    def coroutine_runner(self, runner: Callable[[Awaitable[Any]], Any] | None) -> None:
        self._retirement.run_coroutine = runner if runner is not None else _retire.run_in_own_loop

    @property
    def restart_needed(self) -> dict[str, Any] | None:
        """``{"reason", "modules", "files", "time"}`` once a restart-only module changed
        (the edit is not served until the process restarts), else None."""
        return self._report.restart_needed

    def stats(self) -> dict[str, Any]:
        leaked, leaks, leak_checks_pending = self._retirement.leaks.snapshot()
        retirement = self._retirement.snapshot_counts()
        draining = self._retirement.draining_snapshot()
        with self._state_lock:
            gen = self._current
            report = self._report.snapshot()
            return {
                "generation": gen.number if gen is not None else 0,
                "frozen": self._frozen,
                "closed": self._closed,
                "pending": sorted(self._pending),
                "draining": draining,
                "history": report["history"],
                "leaked": leaked,
                "stale": self._retirement.leaks.stale_snapshot(),
                "leak_checks_pending": leak_checks_pending + self._retirement.awaiting(),
                "last_error": self.last_error.as_dict() if self.last_error else None,
                "restart_needed": report["restart_needed"],
                "reloads": report["reloads"],
                "failures": report["failures"],
                "retired": retirement["retired"],
                "purges": retirement["purges"],
                "purge_errors": retirement["purge_errors"],
                "clone_errors": report["clone_errors"],
                "leaks": leaks,
            }

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until due retirements, purges and leak checks have run."""
        return self._retirement.janitor.wait_idle(timeout)

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
        if self._epoch == fork_epoch():
            return False
        with self._reload_lock:
            if self._epoch == fork_epoch():
                return False
            self._epoch = fork_epoch()
            self._watcher = None  # its threads did not survive fork()
            # The child dropped the callers it inherited (see _after_fork_in_child): a
            # generation that was draining may be drained now.
            for gen in self._retirement.draining():
                gen.maybe_retire()
            if self._watch_options is not None and not self._closed:
                self.watch(**self._watch_options)  # which also catches up
        return True

    def _catch_up(self) -> None:
        """Hand the watcher the files that changed since they were loaded while no
        watcher ran (before it started, or in the parent before fork): no event will
        come for them. They then go through the watcher's checks like any save,
        rather than being read here while an editor may be writing them."""
        with self._reload_lock:
            changes = self._find_changes(None, force=False, probe=True)
            files = (self._registry.file(n) for n in sorted(changes.changed | changes.deleted))
            paths = [f for f in files if f is not None]
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
        self._prober.close()
        current = self._current
        order = self._graph.order(current.modules) if current is not None else []
        modules = current.modules if current is not None else {}
        self._retirement.close()
        for name in reversed(order):
            module = modules.get(name)
            if module is not None:
                self._retirement.purge(module, name)
        self._retirement.forget_all()
        others = [e._current.modules for e in list(_engines) if e is not self and e._current is not None]
        _swap.forget_sys_modules(modules, others)
        _engines.discard(self)
        self._sight.close()
        forget_fork(self)

    def _before_fork(self) -> None:
        # No child inherits a half-swapped sys.modules: the fork waits for a reload.
        self._reload_lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._reload_lock.release()

    def _after_fork_in_child(self) -> None:
        self._reload_lock.release()
        # Locks another thread held at fork time stay held forever in the child.
        self._state_lock = self._report.lock = threading.Lock()
        self._retirement.after_fork()
        self._prober.after_fork()

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
            new_files = self._unknown_module_files(paths)
            number = self._reload_plan(paths, force, still_valid, empty_ok)
            # A new module file that no plan imported: a fresh process might (Django
            # finds an app's admin.py by name at start-up): ask one.
            unloaded = frozenset(f for f in new_files if self._registry.name_at(f) is None)
            if unloaded and self._probe_on:
                self._prober.request(_probe.Job(new_files=unloaded))
            return number

    def _unknown_module_files(self, paths: Sequence[str | os.PathLike[str]] | None) -> list[str]:
        """The module files among ``paths`` that no generation has loaded."""
        if not paths or not self._probe_on:
            return []
        found = []
        for path in (os.fspath(p) for p in paths):
            if not path.endswith(".py"):
                continue
            real = os.path.realpath(path)
            if self._registry.name_at(real) is None and self.roots.contains(real) and os.path.isfile(real):
                found.append(real)
        return found

    def _reload_plan(
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
                found = self._find_changes(paths, force=False, empty_ok=empty_ok, probe=True)
                files = [self._registry.file(n) or n for n in found.changed | found.deleted]
                with self._state_lock:
                    self._pending.update(files)
                return self.current.number
            if paths is not None and self._extensions:
                handled, paths = refresh(self._extensions, paths)
                if handled:
                    self._report.refreshed(self.current.number, handled)
                if not paths:
                    return self.current.number
            changes = self._find_changes(paths, force=force, empty_ok=empty_ok)
            if not changes:
                self._clear_reverted_failure()
                return self.current.number
            touched = changes.changed | changes.deleted
            modules = self.current.modules
            planned = _plan.plan(self._graph, changes, modules, self._extensions)
            reasons = _plan.restart_reasons(planned, modules, self._registry, self._extensions)
            if reasons:
                self._report_restart(reasons, touched, changes.sources)
                return self.current.number
            self._attempted = touched
            return self._run_plan(planned, changes, still_valid=still_valid)

    def _find_changes(
        self,
        paths: Sequence[str] | None,
        *,
        force: bool,
        empty_ok: Collection[Path | str] = (),
        probe: bool = False,
    ) -> _plan.Changes:
        """Map changed files to module names, after adopting the strays."""
        if _adopt.strays(self._sight, self._current, self._registry, self._graph, self._module_name):
            self._publish_graph()
        if paths is None:
            return _plan.find_changes(
                [r.name for r in self._registry], self._registry, self.roots,
                force=False, scan=True, empty_ok=empty_ok, probe=probe,
            )
        names, by_extra = _plan.modules_of(paths, self._registry, self.roots, self._extra, self._module_name)
        if self.last_error is not None:
            # A failed plan's edits are still unloaded: a fix that lands in another
            # file (a view registered for a route the same save removed) must bring
            # them in too, or the next generation serves their old code.
            names |= {n for n in self._attempted if n in self._registry}
        return _plan.find_changes(
            names, self._registry, self.roots,
            force=force or by_extra, scan=False, empty_ok=empty_ok, probe=probe,
        )

    def _report_restart(self, reasons: dict[str, str], changed: set[str], sources: dict[str, Source]) -> None:
        """Nothing is swapped: the last generation keeps serving, and everyone is told
        that this edit needs a restart, and why."""
        for name in changed:
            source = sources.get(name)
            if source is not None:
                self._registry.restart_digests[name] = source.digest
        files = tuple(sorted(self._registry.file(n) or n for n in changed))
        self._report.restart(reasons, files, self._current.number if self._current else 0)

    def _clear_reverted_failure(self) -> None:
        """A failed edit undone (the files are back to what the current generation
        loaded) is no failure any more, although nothing needs loading."""
        if self.last_error is None or not self._attempted:
            return
        if not _plan.reverted(self._registry, self._attempted):
            return
        self.last_error = None
        self._attempted = set()
        self._report.recovered(self.current.number)

    def _publish_graph(self) -> None:
        """Publish the graph's edges for :meth:`graph` after a change made outside a
        swap (which publishes them with the new generation)."""
        with self._state_lock:
            self._graph.publish()

    # -- one plan ------------------------------------------------------------------

    def _run_plan(
        self,
        planned: list[str],
        changes: _plan.Changes,
        *,
        still_valid: Callable[[], bool] | None = None,
        first: bool = False,
    ) -> int:
        started = time.perf_counter()
        self._loaded_at = time.time()
        base_gen = self._current
        # The current generation's table is not written while a plan runs (strays
        # are adopted before planning, under the same lock): read it in place.
        base: dict[str, ModuleType] = (base_gen.table or {}) if base_gen else {}
        table = dict(base)
        for name in changes.deleted:
            table.pop(name, None)
        number = (base_gen.number + 1) if base_gen else 1
        gen = Generation(number, table, on_drained=self._retirement.on_drained)
        stage = Stage(
            self._sight, gen, base, table, changes.sources, self._registry.file, changes.deleted,
            compiled_before=self._registry.compiled, children_of=self._registry.children,
        )
        with _staging_lock:
            number = self._stage_and_swap(stage, gen, base, planned, changes, still_valid, first, started)
        # Only now may the old generation retire: this frame no longer holds its
        # instances, so its leak check cannot mistake them for leaked.
        del stage, base, table, gen
        if base_gen is not None:
            self._retirement.superseded(base_gen)
        return number

    def _stage_and_swap(
        self,
        stage: Stage,
        gen: Generation,
        base: dict[str, ModuleType],
        planned: list[str],
        changes: _plan.Changes,
        still_valid: Callable[[], bool] | None,
        first: bool,
        started: float,
    ) -> int:
        number = gen.number
        base_gen = self._current
        fresh, self._untried = self._untried, False
        try:
            try:
                for extension in self._extensions:
                    extension.before_plan(planned)
                stage.run(planned)
                target = self._target.resolve_in(stage, base_gen, self.roots)
                _adopt.imported(stage, self._sight)
                stage.validate()
                # The watcher compares the files with their state at the cut, so a save
                # whose events still lag behind the file counts too.
                if still_valid is not None and not still_valid():
                    raise SourceChanged("files changed while the plan was loading")
                if self._extensions:
                    # Last, so that nothing after it can fail: what it readies serves.
                    gen.target = target
                    for extension in self._extensions:
                        extension.prepare(gen, planned)
            except SourceChanged:
                self._discard(stage, planned)
                raise
            except (Exception, SystemExit) as exc:
                self._discard(stage, planned)
                failure = LoadFailure.from_exception(
                    exc, stage.failed_module or self._module_name, self.roots.contains
                )
                self._fail(failure, number, started)
                if self._probe_on and not fresh and _probe.worth_asking(exc, self.roots.contains):
                    # Broken code, or state this process keeps? A fresh one decides.
                    self._prober.request(_probe.Job(failure=failure))
                if first and isinstance(exc, TargetError):
                    raise
                raise ReloadError(failure) from None
        except BaseException:
            if stage.importer.stage is not None:  # KeyboardInterrupt and the like
                self._discard(stage, planned)
            raise
        gen.target = target
        self._swap(stage, gen, base, changes, started)
        for extension in self._extensions:
            try:
                extension.after_swap(gen, planned)
            except Exception:
                log.error("extension %s failed after generation %d was swapped in:\n%s",
                          extension.name, number, traceback.format_exc())
        return number

    # -- the fresh-process probe ----------------------------------------------------

    def _run_probe(self, started: Callable[[Any], None]) -> _probe.ProbeResult:
        target = self._target
        return _probe.probe(
            target.module, target.attr, call=target.call, roots=self.roots.paths,
            factory_args=target.factory_args, factory_kwargs=target.factory_kwargs,
            started_child=started,
        )

    def _decide_probe(self, job: _probe.Job, result: _probe.ProbeResult) -> None:
        """Act on what a fresh interpreter said (on the probe's thread)."""
        with self._reload_lock:
            if self._closed:
                return
            # A newer edit decides for itself: its plan succeeded or failed anew.
            failure = job.failure if job.failure is not None and self.last_error is job.failure else None
            new = {f: result.files[f] for f in job.new_files
                   if f in result.files and self._registry.name_at(f) is None}
            if failure is None and not new:
                if job.new_files and result.loads is not None:
                    log.debug("new module file(s) %s: a fresh process does not import them either",
                              ", ".join(sorted(job.new_files)))
                return
            if result.loads is None:
                log.warning("could not tell whether a fresh process would load %s: the probe %s",
                            self.target, result.detail)
                return
            if failure is not None and not result.loads:
                theirs = result.failure or {}
                if (theirs.get("type"), theirs.get("message")) == (failure.type, failure.message):
                    log.info("a fresh process fails to load %s too (%s: %s): the code needs the fix",
                             self.target, failure.type, failure.message)
                    return
                # Both are true, but the fresh process's error is the one the user can fix
                # first (this process stopped at what it remembers): the page shows it.
                fresh_failure = LoadFailure(
                    module=failure.module, file=theirs.get("file"), line=theirs.get("line"),
                    type=str(theirs.get("type")), message=str(theirs.get("message")),
                    traceback=str(theirs.get("traceback", "")),
                )
                log.warning("a fresh process fails to load %s differently: %s (this process: %s: %s)",
                            self.target, str(fresh_failure), failure.type, failure.message)
                self.last_error = fresh_failure
                return
            reasons: dict[str, str] = {}
            files: set[str] = set()
            if failure is not None:
                reasons[failure.module] = (
                    f"it fails in this process ({failure.type}: {failure.message}) but loads in a"
                    f" fresh one ({result.seconds:.1f} s): state that outlives generations (a"
                    " framework's registry, a shared metadata object) holds what the edit redefines"
                )
                files.update(f for n in self._attempted or {failure.module} if (f := self._registry.file(n)))
                if failure.file:
                    files.add(failure.file)
                # The file is not what is wrong: no error page tells the user to fix it.
                self.last_error = None
            if result.loads:
                for path, name in new.items():
                    reasons[name] = (
                        "a new module that a fresh process imports at start-up (found by name,"
                        " as Django's admin autodiscovery finds admin.py), and nothing here imports"
                    )
                    files.add(path)
            if reasons:
                self._report.restart(reasons, tuple(sorted(files)),
                                     self._current.number if self._current else 0)

    def wait_probes(self, timeout: float = 60.0) -> bool:
        """Wait until no fresh-process probe runs or waits (for tests and tools)."""
        return self._prober.idle.wait(timeout)

    def _discard(self, stage: Stage, planned: Sequence[str]) -> None:
        """Throw a failed plan away: sys.modules back as it was; fresh instances that
        were not cloned purged at once (a plan's half-opened resources would leak)."""
        stage.rollback()
        for extension in self._extensions:
            try:
                extension.after_discard(planned)
            except Exception:
                log.error("extension %s failed to undo a discarded plan:\n%s",
                          extension.name, traceback.format_exc())
        for name, module in reversed(list(stage.fresh.items())):
            if name not in stage.cloned:
                self._retirement.purge(module, name)

    def _fail(self, failure: LoadFailure, number: int, started: float) -> None:
        event = self._report.failed(failure, number, started)
        # Set after the log line, so whoever sees the error can find its record too.
        self.last_error = failure
        self._report.events.publish(event)

    def _swap(
        self,
        stage: Stage,
        gen: Generation,
        base: dict[str, ModuleType],
        changes: _plan.Changes,
        started: float,
    ) -> None:
        number = gen.number
        deleted = changes.deleted
        replaced = _swap.replaced_instances(stage, base, deleted, self._registry)
        _swap.record_plan(stage, deleted, self._registry, self._graph, number, self._loaded_at)
        stage.importer.stage = None
        with self._state_lock:
            _swap.bind_packages(stage, base, deleted, self._registry)
            previous = self._current
            gen.make_current()
            self._retirement.add(gen, replaced)
            self._current = gen
            self._graph.publish()
            self.last_error = None
            duration = (time.perf_counter() - started) * 1000
            exec_ms = stage.exec_s * 1000
            importers = len([n for n in stage.fresh if n not in changes.changed]) if previous else 0
            self._report.swapped(number, stage.fresh, importers, len(stage.clone_failed), duration, exec_ms,
                                 first=previous is None)
        first = previous is None
        unreached = [] if first else sorted(
            n for n in changes.changed if not self._graph.reaches(n, self._module_name, stage.table)
        )
        self._report.announce_swap(
            number, stage.fresh, first=first, deleted=changes.deleted, unreached=unreached,
            importers=importers, duration=duration, exec_ms=exec_ms,
        )

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


__all__ = ["ReloadEvent", "Reloader", "default_root"]
