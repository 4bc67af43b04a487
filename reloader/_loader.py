"""Loading a plan into fresh module objects: a :class:`Stage` reads each module's
:class:`Source`, runs its ``__mp_clone__`` hook, executes its code in a fresh
instance whose ``__import__`` is its generation's (see ``_imports``), and can put
``sys.modules`` back exactly as it was.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import importlib.util
import inspect
import linecache
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import _bootstrap  # type: ignore[attr-defined]
from importlib.machinery import ModuleSpec
from types import CodeType, ModuleType
from typing import Any

from ._generation import Generation
from ._graph import ImportRef, static_imports
from ._imports import TOKEN, GenerationImport, Host, enter_stage, find_spec_quietly
from ._signature import Signature, file_signature, signature_of
from .errors import SourceChanged

log = logging.getLogger("hotmod.loader")

class InstanceToken:
    """Weak-referenceable marker stored in an instance's globals."""

    __slots__ = ("__weakref__", "generation", "module")

    def __init__(self, module: str, generation: int) -> None:
        self.module = module
        self.generation = generation

    def __repr__(self) -> str:
        return f"<hotmod instance of {self.module} from generation {self.generation}>"


@dataclass(frozen=True)
class Source:
    """A module file as read for one load: its bytes and the stat signature that was
    true before and after the read."""

    path: str
    data: bytes
    signature: Signature
    digest: str
    read_at: float  # time.time() just before the read

    @classmethod
    def read(cls, path: str) -> Source:
        read_at = time.time()
        before = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
        after = os.stat(path)
        sig = signature_of(after)
        if signature_of(before) != sig or len(data) != sig[0]:
            raise SourceChanged(f"{path} changed while it was read")
        return cls(path, data, sig, hashlib.blake2b(data, digest_size=16).hexdigest(), read_at)

    def unchanged(self) -> bool:
        return file_signature(self.path) == self.signature


@dataclass(frozen=True)
class Compiled:
    """A module's code compiled from the content with hash ``digest`` at ``path``, and
    its import statements: an importer re-executed with an unchanged file reuses both
    (code objects are immutable), as the import system reuses a ``.pyc``."""

    digest: str
    path: str
    refs: tuple[ImportRef, ...]
    code: CodeType


class Stage:
    """One plan being executed into fresh module objects for generation ``number``.

    Runs on one thread under the engine's reload lock. While it runs, its new
    instances sit in ``sys.modules`` (module code such as ``dataclasses`` and
    ``typing.get_type_hints`` looks itself up there); :meth:`rollback` restores
    ``sys.modules`` exactly.
    """

    def __init__(
        self,
        host: Host,
        generation: Generation,
        base: Mapping[str, ModuleType],
        table: dict[str, ModuleType],
        sources: dict[str, Source],
        file_of: Callable[[str], str | None],
        deleted: set[str],
        compiled_before: Callable[[str], Compiled | None] = lambda name: None,
        children_of: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        self.host = host
        #: package → the names of its known submodules (None: look through the table)
        self.children_of = children_of
        self.deleted = deleted  # modules this plan removes
        self.generation = generation
        self.base = base  # the instances of the generation being replaced
        self.table = table  # the new generation's name → instance, filled as we go
        self.sources = sources  # name → Source, read ahead for changed modules
        self.file_of = file_of  # known name → real path of its file
        self.compiled_before = compiled_before  # name → what its last load compiled
        self.compiled: dict[str, Compiled] = {}  # what this stage compiled (or reused)
        self.importer = GenerationImport(generation, host, self)
        self.builtins = dict(builtins.__dict__)
        self.builtins["__import__"] = self.importer
        self.fresh: dict[str, ModuleType] = {}
        self.adopted: dict[str, ModuleType] = {}  # loaded past our __import__
        self.by_name: dict[str, set[str]] = {}  # importer → modules it loaded by name
        self.pending: set[str] = set()
        self.cloned: set[str] = set()
        self.clone_failed: set[str] = set()
        self.refs: dict[str, list[ImportRef]] = {}
        self.opened: dict[str, set[str]] = {}
        self.saved: dict[str, ModuleType | None] = {}
        self.executing: list[str] = []
        self.failed_module: str | None = None
        self.modules_before = 0  # len(sys.modules) when run() started
        self._module_files: dict[str, bool] = {}
        #: Seconds spent running the app's own code (clone hooks, module bodies, the
        #: target's factory), so that the engine's share of a reload can be told apart.
        self.exec_s = 0.0
        self._running_since: float | None = None  # set while the app's code runs

    # -- the app's own time ---------------------------------------------------------

    def app_starts(self) -> None:
        self._running_since = time.perf_counter()

    def app_stops(self) -> bool:
        """Stop the clock of the app's own code; True if it was running (a module
        whose code imports another one: its clock resumes after that import)."""
        since = self._running_since
        if since is None:
            return False
        self.exec_s += time.perf_counter() - since
        self._running_since = None
        return True

    # -- bookkeeping used by the import hook ----------------------------------------

    def owns(self, module: Any) -> bool:
        return isinstance(module, ModuleType) and self.fresh.get(module.__name__) is module

    def record(self, importer: str | None, absname: str, fromlist: Any) -> None:
        if importer is None or importer not in self.fresh:
            return
        refs = self.refs.get(importer)
        if refs is None:
            refs = self.refs[importer] = []
        if fromlist:
            refs.append((absname, tuple(fromlist)))
        else:
            refs.append((absname, ()))
            if "." in absname:
                refs.append((absname.partition(".")[0], ()))

    def note_open(self, path: str) -> None:
        if self.executing and not path.endswith((".py", ".pyc")):
            self.opened.setdefault(os.path.realpath(path), set()).add(self.executing[-1])

    def is_reloadable_module(self, name: str, parent: Any) -> bool:
        """Whether ``name`` (a child of ``parent``) is a module file inside the roots."""
        hit = self._module_files.get(name)
        if hit is None:
            path = getattr(parent, "__path__", None)
            if not path:
                return False  # only packages have submodules
            spec = self._find_spec(name, path)
            hit = self._module_files[name] = spec is not None and self._reloadable(spec)
        return hit

    # -- loading ------------------------------------------------------------------

    def run(self, plan: list[str]) -> None:
        self.pending = set(plan)
        for name in self.deleted:  # their code must not find them, even via sys.modules
            self.saved.setdefault(name, sys.modules.pop(name, None))
        self.modules_before = len(sys.modules)
        # Restore, not clear: an engine created while another one loads (a Publisher
        # built at import time) must hand the outer stage back when it is done.
        outer = enter_stage(self)
        try:
            for name in plan:
                if name in self.pending:
                    self.import_new(name)
        finally:
            enter_stage(outer)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` (a target factory) with this stage active, so that what it
        imports is staged and recorded too."""
        outer = enter_stage(self)
        self.app_starts()
        try:
            return fn()
        finally:
            self.app_stops()
            enter_stage(outer)

    def import_new(self, name: str) -> Any:
        """Load ``name`` into this generation (fresh), or import it normally when it is
        not reloadable. Returns the instance."""
        module = self.table.get(name)
        if module is not None and name not in self.pending:
            return module
        parent_name, _, child = name.rpartition(".")
        parent: Any = None
        if parent_name:
            parent = self.table.get(parent_name)
            if parent is None or parent_name in self.pending:
                parent = self.importer.resolve(parent_name, self.table, self, self.host)
            if name in self.table and name not in self.pending:
                return self.table[name]  # the parent's code imported it
        path = self.file_of(name) if name in self.pending else None
        if path is not None:
            spec = _spec_for_file(name, path)
        else:
            spec = self._find_spec(name, getattr(parent, "__path__", None) if parent_name else None)
        if spec is None or not self._reloadable(spec):
            builtins.__import__(name)
            return sys.modules[name]
        return self._execute(name, spec, parent, child)

    def _find_spec(self, name: str, path: Any) -> ModuleSpec | None:
        return find_spec_quietly(name, path)

    def _reloadable(self, spec: ModuleSpec) -> bool:
        origin = spec.origin
        return bool(
            spec.has_location
            and origin
            and origin.endswith(".py")
            and self.host.roots.contains(origin)
        )

    def _execute(self, name: str, spec: ModuleSpec, parent: Any, child: str) -> ModuleType:
        importer_running = self.app_stops()
        try:
            return self._execute_timed(name, spec, parent, child)
        finally:
            if importer_running:
                self.app_starts()

    def _execute_timed(self, name: str, spec: ModuleSpec, parent: Any, child: str) -> ModuleType:
        assert spec.origin is not None
        source = self.sources.get(name)
        if source is None:
            source = self.sources[name] = Source.read(spec.origin)
        old = self.base.get(name)
        new = importlib.util.module_from_spec(spec)
        hook = vars(old).get("__mp_clone__") if old is not None else None
        if callable(hook):
            self.app_starts()
            try:
                if inspect.iscoroutinefunction(hook):
                    raise TypeError(
                        f"__mp_clone__ of {name} is a coroutine function; clone hooks run on the"
                        " reloading thread, before the new code and off any event loop, and only"
                        " hand objects over: make it a plain def (__mp_purge__ may be async)"
                    )
                hook(new)
                self.cloned.add(name)
            except Exception:
                self.app_stops()
                log.error(
                    "__mp_clone__ of %s (generation %d) raised; loading it without cloning,"
                    " and its old instance will be purged once drained:\n%s",
                    name,
                    self.generation.number - 1,
                    traceback.format_exc(),  # text: a kept record must not keep frames
                )
                self.clone_failed.add(name)
                new = importlib.util.module_from_spec(spec)
            self.app_stops()
        namespace = vars(new)
        namespace["__builtins__"] = self.builtins
        namespace[TOKEN] = InstanceToken(name, self.generation.number)
        self.table[name] = new
        self.fresh[name] = new
        self.pending.discard(name)
        if name not in self.saved:
            self.saved[name] = sys.modules.get(name)
        sys.modules[name] = new
        path = spec.origin
        assert path is not None
        text = source.data.decode("utf-8", "replace")
        linecache.cache[path] = (len(source.data), None, text.splitlines(True), path)
        self.executing.append(name)
        try:
            compiled = self.compiled_before(name)
            if compiled is None or compiled.digest != source.digest or compiled.path != path:
                compiled = self._compile(name, source, path, spec.submodule_search_locations is not None)
            self.compiled[name] = compiled
            self.refs.setdefault(name, []).extend(compiled.refs)
            self.app_starts()
            code = compiled.code
            with _initializing(name, new):
                exec(code, namespace)
        except BaseException:
            if self.failed_module is None:
                self.failed_module = name
            raise
        finally:
            self.app_stops()
            self.executing.pop()
        if spec.submodule_search_locations is not None:
            self._bind_shared_children(name, new)
        if parent is not None and self.owns(parent):
            setattr(parent, child, new)
        return new

    def _compile(self, name: str, source: Source, path: str, is_package: bool) -> Compiled:
        # Parsing and compiling count as the app's: a plain import does them too.
        self.app_starts()
        try:
            tree = ast.parse(source.data, filename=path)
        finally:
            self.app_stops()
        refs = tuple(static_imports(tree, name, is_package))
        self.app_starts()
        try:
            code = compile(tree, path, "exec", dont_inherit=True)
        finally:
            self.app_stops()
        return Compiled(source.digest, path, refs, code)

    def _bind_shared_children(self, name: str, package: ModuleType) -> None:
        """A re-executed ``__init__`` has none of its submodules as attributes, and the
        ones this generation shares with the last are never imported again to bind
        them. Bind them now, not only at the swap: code of the plan and the target's
        factory read them as attributes (Pyramid's ``config.include('.routes')`` does
        ``getattr(package, 'routes')``). What the package's own code set wins."""
        prefix = name + "."
        namespace = vars(package)
        if self.children_of is not None:  # the registry's index: O(the package's children)
            children = [(c, self.table.get(c)) for c in self.children_of(name)]
        else:
            children = [(n, m) for n, m in list(self.table.items()) if n.startswith(prefix)]
        for other, module in children:
            rest = other[len(prefix):]
            if module is not None and "." not in rest and other not in self.pending:
                namespace.setdefault(rest, module)

    def grew_past_own(self) -> bool:
        """Whether ``sys.modules`` gained entries that this stage did not put there."""
        own = sum(1 for name in self.fresh if self.saved.get(name) is None)
        return len(sys.modules) - self.modules_before > own

    def validate(self) -> None:
        """Raise :class:`SourceChanged` if a file changed since it was read."""
        for source in self.sources.values():
            if not source.unchanged():
                raise SourceChanged(f"{source.path} changed while its plan was loading")

    def rollback(self) -> None:
        """Put ``sys.modules`` back exactly as it was before this stage."""
        for name, previous in reversed(list(self.saved.items())):
            if previous is None:
                if name in self.fresh and sys.modules.get(name) is self.fresh[name]:
                    del sys.modules[name]
            else:
                sys.modules[name] = previous
        self.importer.stage = None

    def is_module(self, name: str) -> bool:
        """Whether ``name`` names a module (for resolving ``from X import n``)."""
        if name in self.table:
            return True
        parent_name, _, child = name.rpartition(".")
        parent = self.table.get(parent_name)
        paths = getattr(parent, "__path__", None)
        if not paths:
            return False
        return any(
            os.path.isfile(os.path.join(p, child + ".py"))
            or os.path.isfile(os.path.join(p, child, "__init__.py"))
            for p in paths
        )


def _spec_for_file(name: str, path: str) -> ModuleSpec | None:
    is_package = os.path.basename(path) == "__init__.py"
    return importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[os.path.dirname(path)] if is_package else None
    )


@contextlib.contextmanager
def _initializing(name: str, module: ModuleType) -> Iterator[None]:
    """Run a fresh instance's code as the import system runs a first import's: under
    the module's import lock, its spec marked ``_initializing``. Another thread that
    imports ``name`` meanwhile (``import``, ``__import__``, ``importlib.import_module``:
    a framework looking a module up by name per request) then waits for the code to
    finish instead of getting a half-run module (``module 'views' has no attribute
    ...``), exactly as it would wait during a first import. Where the interpreter's
    import machinery has no such lock (not CPython 3.11-3.13), the code just runs."""
    manager = getattr(_bootstrap, "_ModuleLockManager", None)
    spec = getattr(module, "__spec__", None)
    if manager is None or spec is None:
        yield
        return
    with manager(name):
        spec._initializing = True
        try:
            yield
        finally:
            spec._initializing = False
