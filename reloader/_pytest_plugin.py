"""The ``hot_reload`` pytest fixture: reload a module in a test through hotmod's
real engine, with its ``__mp_clone__`` and ``__mp_purge__`` hooks::

    import shop.db

    def test_the_pool_crosses_a_reload(hot_reload):
        new = hot_reload(shop.db)            # shop.db.__mp_clone__(new), then the new code
        assert new.pool is shop.db.pool
        assert shop.db not in hot_reload.purged

Registered through the ``pytest11`` entry point (name ``hotmod``), so it is there
once hotmod is installed; ``-p no:hotmod`` turns it off. Importing this module costs
hotmod's engine and pytest, nothing else. See docs/hooks.md.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn

import pytest

from . import _adopt
from ._engine import Reloader
from ._events import ReloadEvent
from ._generation import RETIRED
from ._loader import TOKEN
from ._target import default_root
from .errors import HotmodError, TargetError

__all__ = ["HotReloadFixture", "hot_reload"]

#: Seconds a reload waits for the purge hooks its superseded generation made due.
PURGE_TIMEOUT = 10.0
#: The engine's leak check would report the instances a test holds on purpose (``old``):
#: by default it is put off past any test's end (the engine drops it when closed).
LEAK_CHECK_DELAY = 3600.0
#: Marks the purge hooks this fixture wraps to record which instance was purged.
_RECORDING = "_hotmod_records_purge"
#: The stand-in target module of an engine that adopts a test's instance: the
#: instance itself cannot be the target, which the engine would load afresh.
_ANCHOR = "_hotmod_hot_reload_anchor_{}"
_anchors = itertools.count(1)


@dataclass
class _Engine:
    """One engine of the fixture and the generations it has retired (numbers)."""

    reloader: Reloader
    retired: set[int] = field(default_factory=set)  # guarded by changed
    changed: threading.Condition = field(default_factory=threading.Condition)
    unsubscribe: Callable[[], None] = lambda: None

    def on_event(self, event: ReloadEvent) -> None:
        # Published after the retired generation's due purge hooks have run.
        if event.kind == "retired":
            with self.changed:
                self.retired.add(event.generation)
                self.changed.notify_all()

    def wait_retired(self, number: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: number in self.retired, timeout)


class HotReloadFixture:
    """What the ``hot_reload`` fixture gives a test.

    ``hot_reload(module)`` reloads ``module`` (a module object or its dotted name) and
    returns the new instance. The instance reloaded is the one the test holds: a
    module the fixture has no engine for yet is adopted as the first generation of a
    new one, so ``module.__mp_clone__(new)`` runs on that very instance (a name
    stands for the instance ``sys.modules`` holds; one that was never imported is
    loaded, as :meth:`load` does). Where it cannot adopt the instance (no ``.py``
    file, outside any root it can use, no longer the one in ``sys.modules``), or the
    instance passed is not the one its engine holds, the test fails saying so: it
    never reloads another instance in its place. At the end of the test every
    engine is closed (the instances it created are purged, as at shutdown; those it
    adopted and never replaced are the session's, and are not) and ``sys.modules``
    is put back as it was.
    """

    def __init__(self) -> None:
        self._engines: list[_Engine] = []
        self._purged_lock = threading.Lock()  # guards _purged: the janitor thread appends
        self._purged: list[ModuleType] = []
        self._saved: dict[str, Any] | None = None  # sys.modules before the first load
        self._names: set[str] = set()  # every module name an engine of ours held
        self._ours: weakref.WeakSet[ModuleType] = weakref.WeakSet()  # every instance seen
        # Instances the test's session made, adopted by an engine: at close, those still
        # current are spared their purge, and every one gets its own hook back.
        self._adopted: weakref.WeakSet[ModuleType] = weakref.WeakSet()
        self._spared: weakref.WeakSet[ModuleType] = weakref.WeakSet()
        self._anchor_dirs: list[str] = []  # on sys.path while the fixture lasts

    def __repr__(self) -> str:
        return f"<hot_reload fixture: {len(self._engines)} engine(s), {len(self._purged)} purged>"

    @property
    def purged(self) -> list[ModuleType]:
        """The instances whose ``__mp_purge__`` has run, oldest first. A reload returns
        once the purges it made due have run; :meth:`close` adds the shutdown purges.
        The throw-away instances of a failed reload are not listed: the fixture never
        sees them."""
        with self._purged_lock:
            return list(self._purged)

    @property
    def reloader(self) -> Reloader:
        """The engine of the latest :meth:`load` (for ``stats()``, ``subscribe()``)."""
        if not self._engines:
            raise HotmodError("hot_reload has loaded nothing yet: call hot_reload(module) first")
        return self._engines[-1].reloader

    def load(self, module: ModuleType | str, **options: Any) -> ModuleType:
        """Load ``module``'s own instance through a new engine, as a server does at
        start-up (generation 1), and return it. ``options`` go to
        :class:`hotmod.Reloader` (``roots``, ``leak_check_delay``...); the watched root
        is by default the folder of the module's top-level package."""
        name = _name_of(module)
        if self._saved is None:
            self._saved = dict(sys.modules)
        options.setdefault("leak_check_delay", LEAK_CHECK_DELAY)
        # A test's failed reload is the answer it wants: no fresh process is asked
        # whether it would load (the probe of docs/cli.md), nor restarts suggested.
        options.setdefault("probe", False)
        # The engine resolves a callable target; a module has no application, but every
        # module has a name, and a str's methods are callable. (Not the module's
        # loader: under pytest, a module marked for assertion rewriting is loaded by
        # pytest's import hook, which has no get_source.)
        reloader = Reloader(f"{name}:__name__.upper", **options)
        engine = _Engine(reloader)
        engine.unsubscribe = reloader.subscribe(engine.on_event)
        try:
            reloader.load()
        except BaseException:
            reloader.close()
            raise
        self._engines.append(engine)
        self._note(engine)
        return reloader.current.modules[name]

    def __call__(self, module: ModuleType | str) -> ModuleType:
        """Reload ``module`` through the engine and return the new instance, once the
        purge hooks this reload made due have run. A module no engine of the fixture
        holds is adopted first (see the class). A failed reload raises
        :class:`hotmod.ReloadError` and leaves the current instance as it was."""
        name = _name_of(module)
        engine = self._engine_holding(module)
        if engine is None:
            held = module if isinstance(module, ModuleType) else sys.modules.get(name)
            if held is None:
                self.load(name)
            else:
                self._adopt_held(name, held)
            engine = self._engines[-1]
        reloader = engine.reloader
        before = reloader.current
        path = before.modules[name].__file__
        if path is None:
            raise HotmodError(f"module {name!r} has no file to reload")
        reloader.reload([path])
        if before.state == RETIRED and not engine.wait_retired(before.number, PURGE_TIMEOUT):
            pytest.fail(
                f"hot_reload: generation {before.number} of {name} did not retire within"
                f" {PURGE_TIMEOUT:.0f} s of the reload",
                pytrace=False,
            )
        self._note(engine)
        return reloader.current.modules[name]

    def close(self) -> None:
        """Close every engine (the current instances are purged, importers first) and
        put ``sys.modules`` back as it was before the first load. Runs at the end of
        the test; call it earlier to see the shutdown purges in :attr:`purged`."""
        engines, self._engines = self._engines, []
        try:
            for engine in reversed(engines):
                engine.unsubscribe()
                # The session's own instances that no reload replaced: not the
                # engine's to shut down (the rest of the session may use them).
                for instance in engine.reloader.current.modules.values():
                    if TOKEN not in vars(instance):
                        self._spared.add(instance)
                engine.reloader.close()
        finally:
            self._restore()

    # -- bookkeeping ---------------------------------------------------------------

    def _engine_holding(self, module: ModuleType | str) -> _Engine | None:
        name = _name_of(module)
        for engine in reversed(self._engines):
            current = engine.reloader.current.modules.get(name)
            if current is None:
                continue
            if isinstance(module, ModuleType) and module is not current:
                if module in self._ours:
                    raise HotmodError(
                        f"{module!r} is an instance that hot_reload already replaced: pass the"
                        " newest one (the one hot_reload returned last)"
                    )
                _refuse(
                    f"hot_reload({name}): the instance passed is not the one hot_reload holds"
                    f" for {name} (it loaded its own with hot_reload.load()); pass the instance"
                    " load() returned, or the name, and it reloads that one"
                )
            return engine
        return None

    def _adopt_held(self, name: str, module: ModuleType) -> None:
        """A new engine whose first generation is ``module`` itself, the instance the
        test holds (with the instances it stands on: see ``_adopt.held``); its target
        is a stand-in module of its own, in a folder put on ``sys.path``."""
        problem = _unadoptable(name, module)
        if problem is not None:
            _refuse(f"hot_reload({name}): {problem}; it reloads no other instance in its place")
        assert module.__file__ is not None
        try:
            roots = [default_root(name)]
            anchor_dir = tempfile.mkdtemp(prefix="hotmod-hot-reload-")
            anchor = _ANCHOR.format(next(_anchors))
            with open(os.path.join(anchor_dir, f"{anchor}.py"), "w") as f:
                f.write('"""Stands in as the target of an engine that adopted a test\'s module."""\n')
            self._anchor_dirs.append(anchor_dir)
            sys.path.append(anchor_dir)
            reloader = Reloader(f"{anchor}:__name__.upper", roots=[*roots, anchor_dir],
                                leak_check_delay=LEAK_CHECK_DELAY, probe=False)
        except (TargetError, ValueError) as exc:
            _refuse(f"hot_reload({name}): {module.__file__} lies outside any root it can use: {exc}")
        if not reloader.roots.contains(module.__file__):
            reloader.close()
            _refuse(f"hot_reload({name}): {module.__file__} lies outside the roots {list(roots)}"
                    " (excluded, or in a system folder)")
        if self._saved is None:
            self._saved = dict(sys.modules)
        engine = _Engine(reloader)
        engine.unsubscribe = reloader.subscribe(engine.on_event)
        try:
            reloader.load()
            _adopt.held(reloader, name, module)
        except BaseException:
            reloader.close()
            raise
        self._engines.append(engine)
        for instance in reloader.current.modules.values():
            if TOKEN not in vars(instance):
                self._adopted.add(instance)
        self._note(engine)

    def _note(self, engine: _Engine) -> None:
        """Note the current generation's instances and record their purges."""
        for name, instance in engine.reloader.current.modules.items():
            self._names.add(name)
            if instance not in self._ours:
                self._ours.add(instance)
                self._record_purges(instance)

    def _record_purges(self, instance: ModuleType) -> None:
        namespace = vars(instance)
        hook = namespace.get("__mp_purge__")
        if not callable(hook):
            return
        # A clone that copied everything brought the old instance's wrapper along.
        original = hook.__wrapped__ if getattr(hook, _RECORDING, False) else hook
        instance_ref = weakref.ref(instance)
        purged, lock, spared = self._purged, self._purged_lock, self._spared

        # functools.wraps keeps the signature the engine inspects to decide whether
        # the hook gets the module as its argument.
        @functools.wraps(original)
        def recording(*args: Any, **kwargs: Any) -> Any:
            purged_instance = instance_ref()
            if purged_instance is not None:
                if purged_instance in spared:
                    return None
                with lock:
                    purged.append(purged_instance)
            return original(*args, **kwargs)

        setattr(recording, _RECORDING, True)
        namespace["__mp_purge__"] = recording

    def _restore(self) -> None:
        """``sys.modules`` and package attributes as they were before the first load;
        the adopted instances' own purge hooks back in place; no stand-in left."""
        for instance in list(self._adopted):
            hook = vars(instance).get("__mp_purge__")
            if getattr(hook, _RECORDING, False):
                vars(instance)["__mp_purge__"] = hook.__wrapped__  # type: ignore[union-attr]
        self._adopted = weakref.WeakSet()
        self._spared = weakref.WeakSet()
        for anchor_dir in self._anchor_dirs:
            if anchor_dir in sys.path:
                sys.path.remove(anchor_dir)
            shutil.rmtree(anchor_dir, ignore_errors=True)
        self._anchor_dirs = []
        saved, self._saved = self._saved, None
        if saved is None:
            return
        names = sorted(self._names, key=lambda n: n.count("."))
        for name in names:
            original = saved.get(name)
            if original is not None:
                sys.modules[name] = original
            elif sys.modules.get(name) in self._ours:
                del sys.modules[name]
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = sys.modules.get(parent_name) if parent_name else None
            if parent is None or vars(parent).get(child) not in self._ours:
                continue
            original = saved.get(name)
            if original is not None:
                setattr(parent, child, original)
            else:
                delattr(parent, child)
        self._names.clear()


def _unadoptable(name: str, module: ModuleType) -> str | None:
    """Why the test's instance ``module`` cannot be adopted, or None."""
    if sys.modules.get(name) is not module:
        return (f"the instance passed is not the one sys.modules holds for {name}: it was"
                " already replaced (by a reload, or another import)")
    file = getattr(module, "__file__", None)
    if not file:
        return f"{name} has no file (a built-in module or a namespace package)"
    if not file.endswith(".py"):
        return f"{name} is not loaded from a .py file ({file}): there is no source to reload"
    if not os.path.isfile(file):
        return f"{name}'s file {file} no longer exists"
    return None


def _refuse(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def _name_of(module: ModuleType | str) -> str:
    if isinstance(module, str):
        return module
    if isinstance(module, ModuleType):
        return module.__name__
    raise TypeError(f"hot_reload takes a module or its dotted name, not {type(module).__name__}")


@pytest.fixture
def hot_reload() -> Iterator[HotReloadFixture]:
    """Reload a module through hotmod's engine with its clone and purge hooks:
    ``new = hot_reload(module)``; ``hot_reload.purged`` lists the purged instances.
    Engines are closed and ``sys.modules`` restored after the test."""
    fixture = HotReloadFixture()
    try:
        yield fixture
    finally:
        fixture.close()
