"""The registry: one record per reloadable module the engine has loaded or adopted.

Owned by the reload path (one writer at a time, under the engine's reload lock).
"""

from __future__ import annotations

import ast
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

from ._graph import Graph, resolve_refs, static_imports
from ._loader import Compiled, Source
from ._signature import Signature, mtime_blur
from .errors import SourceChanged

#: The signature of a file whose loaded content is unknown: it never matches a stat.
UNKNOWN: Signature = (-1, -1, -1)


@dataclass
class ModuleRecord:
    """What the engine knows of one module: where its file is, what was loaded from
    it, and which generations its instance belongs to."""

    name: str
    file: str  # real path
    signature: Signature = UNKNOWN  # when loaded
    digest: str | None = None  # content hash loaded; None: unknown
    read_at: float = 0.0  # time.time() of the read
    born: int = 1  # the generation that created its current instance
    lineage: int | None = None  # start of its clone lineage (None: ``born``)
    compiled: Compiled | None = None  # what its latest load compiled

    def loaded(self, source: Source) -> None:
        self.signature, self.digest, self.read_at = source.signature, source.digest, source.read_at


class StaleModules:
    """Modules whose replaced instances left code reachable from outside the
    generations (``_stale``): restart-only for the rest of the process, since the
    holder will take the next instance's code no better than it took this one's.

    Written by the janitor (the stale check), read by the reload path (planning):
    guarded by its own lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _reasons
        self._reasons: dict[str, str] = {}

    def mark(self, name: str, reason: str) -> None:
        with self._lock:
            self._reasons.setdefault(name, reason)

    def reason(self, name: str) -> str | None:
        with self._lock:
            return self._reasons.get(name)

    def after_fork(self) -> None:
        self._lock = threading.Lock()


class Registry:
    """Module name → :class:`ModuleRecord`, with the indexes the reload path needs."""

    def __init__(self) -> None:
        self._records: dict[str, ModuleRecord] = {}
        self._by_path: dict[str, str] = {}  # real path → module name
        self._children: dict[str, set[str]] = {}  # package → its loaded submodules
        #: Extra (non-Python) file → modules that opened it while executing.
        self.readers: dict[str, set[str]] = {}
        self._read_by: dict[str, set[str]] = {}  # module → the files it opened
        #: Importer → modules it loaded by name (importlib, a framework's include): no
        #: statement names them, so they are kept across the importer's re-runs.
        self.by_name: dict[str, set[str]] = {}
        #: File → the signature it had when seen empty (an in-place save half done?).
        self.empty_seen: dict[str, Signature] = {}
        #: Content hashes of restart-only edits already reported: not reported again.
        self.restart_digests: dict[str, str] = {}
        #: Modules found holding stale code: restart-only from then on.
        self.stale = StaleModules()

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[ModuleRecord]:
        return iter(list(self._records.values()))

    def get(self, name: str) -> ModuleRecord | None:
        return self._records.get(name)

    def file(self, name: str) -> str | None:
        record = self._records.get(name)
        return record.file if record is not None else None

    def compiled(self, name: str) -> Compiled | None:
        record = self._records.get(name)
        return record.compiled if record is not None else None

    def name_at(self, real: str) -> str | None:
        return self._by_path.get(real)

    def files(self) -> dict[str, str]:
        return dict(self._by_path)

    def children(self, package: str) -> set[str]:
        return self._children.get(package, set())

    def record(self, name: str, file: str, number: int) -> ModuleRecord:
        """The record of ``name`` loaded from ``file`` (real path) into generation
        ``number``: made, or moved there."""
        record = self._records.get(name)
        if record is None:
            record = self._records[name] = ModuleRecord(name, file, born=number)
            self._children.setdefault(name.rpartition(".")[0], set()).add(name)
        elif record.file != file:
            self._by_path.pop(record.file, None)
            record.file = file
        record.born = number
        self._by_path[file] = name
        return record

    def forget(self, name: str) -> None:
        record = self._records.pop(name, None)
        self._children.get(name.rpartition(".")[0], set()).discard(name)
        if record is not None:
            self._by_path.pop(record.file, None)

    def replace_readers(self, gone: set[str], opened: dict[str, set[str]]) -> None:
        """Each re-executed module's readings replace its previous ones, so that a
        module opening a new file name on every load (a temporary file) grows nothing.
        O(the plan's modules and their files), whatever the tree's size."""
        for name in gone:
            for path in self._read_by.pop(name, ()):
                readers = self.readers.get(path)
                if readers is not None:
                    readers.discard(name)
                    if not readers:
                        del self.readers[path]
        for path, names in opened.items():
            self.readers.setdefault(path, set()).update(names)
            for name in names:
                self._read_by.setdefault(name, set()).add(path)

    def note_by_name(self, graph: Graph, importer: str, names: Iterable[str]) -> None:
        """Record that ``importer`` loaded ``names`` by name: edges kept across its re-runs."""
        names = {n for n in names if n != importer}
        if not names:
            return
        self.by_name.setdefault(importer, set()).update(names)
        graph.set_deps(importer, graph.deps(importer) | names)

    def adopt(self, graph: Graph, name: str, module: ModuleType, number: int, since: float) -> None:
        """Take in a module loaded past the engine (by the import system, a framework):
        its file, the edges of its import statements, and what it was loaded from. The
        content counts as loaded only when the file was last modified before ``since``
        (when its load may have begun) by more than the mtime's blur (``mtime_blur``:
        a write just after the load began can carry an mtime just before it).
        Otherwise it is unknown, and any look at it reloads it (once, at worst for
        nothing)."""
        real = os.path.realpath(module.__file__ or "")
        record = self.record(name, real, number)
        record.signature, record.digest = UNKNOWN, None
        try:
            source = Source.read(real)
        except (OSError, SourceChanged):
            return
        if source.signature[1] / 1e9 < since - mtime_blur(source.signature[1]):
            record.loaded(source)
        try:
            tree = ast.parse(source.data, filename=real)
        except (SyntaxError, ValueError):
            return
        refs = static_imports(tree, name, hasattr(module, "__path__"))
        graph.set_deps(name, resolve_refs(refs, _is_loaded_module) | self.by_name.get(name, set()))


def _is_loaded_module(name: str) -> bool:
    return isinstance(sys.modules.get(name), ModuleType)
