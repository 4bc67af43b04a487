"""The ``hot_reload`` pytest fixture: reload a module in a test through hotmod's
real engine, with its ``__mp_clone__`` and ``__mp_purge__`` hooks::

    def test_the_pool_crosses_a_reload(hot_reload):
        old = hot_reload.load("shop.db")     # loaded by the engine, as at start-up
        new = hot_reload(old)                # old.__mp_clone__(new), then the new code
        assert new.pool is old.pool
        assert old not in hot_reload.purged

Registered through the ``pytest11`` entry point (name ``hotmod``), so it is there
once hotmod is installed; ``-p no:hotmod`` turns it off. Importing this module costs
hotmod's engine and pytest, nothing else. See docs/hooks.md.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from ._engine import Reloader
from ._events import ReloadEvent
from ._generation import RETIRED
from .errors import HotmodError

__all__ = ["HotReloadFixture", "hot_reload"]

#: Seconds a reload waits for the purge hooks its superseded generation made due.
PURGE_TIMEOUT = 10.0
#: The engine's leak check would report the instances a test holds on purpose (``old``):
#: by default it is put off past any test's end (the engine drops it when closed).
LEAK_CHECK_DELAY = 3600.0
#: Marks the purge hooks this fixture wraps to record which instance was purged.
_RECORDING = "_hotmod_records_purge"


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
    returns the new instance. A module the fixture has not loaded yet is first loaded
    by the engine (:meth:`load`), so the instance reloaded is always one of the
    fixture's own: the instance that an ordinary ``import`` made only stands for its
    name, and is never touched, handed over or purged. At the end of the test every
    engine is closed (the current instances are purged, as at shutdown) and
    ``sys.modules`` is put back as it was.
    """

    def __init__(self) -> None:
        self._engines: list[_Engine] = []
        self._purged_lock = threading.Lock()  # guards _purged: the janitor thread appends
        self._purged: list[ModuleType] = []
        self._saved: dict[str, Any] | None = None  # sys.modules before the first load
        self._names: set[str] = set()  # every module name an engine of ours held
        self._ours: weakref.WeakSet[ModuleType] = weakref.WeakSet()  # every instance seen

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
        self._adopt(engine)
        return reloader.current.modules[name]

    def __call__(self, module: ModuleType | str) -> ModuleType:
        """Reload ``module`` through the engine and return the new instance, once the
        purge hooks this reload made due have run. A failed reload raises
        :class:`hotmod.ReloadError` and leaves the current instance as it was."""
        name = _name_of(module)
        engine = self._engine_holding(module)
        if engine is None:
            self.load(name)
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
        self._adopt(engine)
        return reloader.current.modules[name]

    def close(self) -> None:
        """Close every engine (the current instances are purged, importers first) and
        put ``sys.modules`` back as it was before the first load. Runs at the end of
        the test; call it earlier to see the shutdown purges in :attr:`purged`."""
        engines, self._engines = self._engines, []
        try:
            for engine in reversed(engines):
                engine.unsubscribe()
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
            if isinstance(module, ModuleType) and module is not current and module in self._ours:
                raise HotmodError(
                    f"{module!r} is an instance that hot_reload already replaced: pass the newest"
                    " one (the one hot_reload returned last)"
                )
            return engine
        return None

    def _adopt(self, engine: _Engine) -> None:
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
        purged, lock = self._purged, self._purged_lock

        # functools.wraps keeps the signature the engine inspects to decide whether
        # the hook gets the module as its argument.
        @functools.wraps(original)
        def recording(*args: Any, **kwargs: Any) -> Any:
            purged_instance = instance_ref()
            if purged_instance is not None:
                with lock:
                    purged.append(purged_instance)
            return original(*args, **kwargs)

        setattr(recording, _RECORDING, True)
        namespace["__mp_purge__"] = recording

    def _restore(self) -> None:
        """``sys.modules`` and package attributes as they were before the first load."""
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
