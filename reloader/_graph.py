"""The dependency graph between reloadable modules, and planning.

Edges point from an importer to the modules it imports. They are learnt twice: at
run time, from every import a module makes while it executes, and statically, from
every import statement in its source (function-level ones too), so an import that
only runs later, when a function is called, still makes its module an importer.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from importlib.util import resolve_name

#: (absolute module name, names imported from it) for one import statement.
ImportRef = tuple[str, tuple[str, ...]]


def static_imports(tree: ast.AST, module: str, is_package: bool) -> list[ImportRef]:
    """Every import statement in ``tree``, as absolute names.

    ``import a.b.c`` binds ``a`` and reaches ``a.b.c``: both are returned (as
    ``("a.b.c", ())`` plus ``("a", ())``); ``import a.b as c`` binds only ``a.b``.
    """
    package = module if is_package else module.rpartition(".")[0]
    refs: list[ImportRef] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                refs.append((alias.name, ()))
                if alias.asname is None and "." in alias.name:
                    refs.append((alias.name.partition(".")[0], ()))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                try:
                    base = resolve_name("." * node.level + (node.module or ""), package)
                except (ImportError, ValueError):
                    continue  # a relative import beyond the top: it fails at run time
            else:
                base = node.module or ""
            if base:
                refs.append((base, tuple(a.name for a in node.names)))
    return refs


#: Fields through which statements nest (imports are statements: expressions,
#: which make up most of a tree, are never visited).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for field in _BODIES:
            children = getattr(node, field, None)
            if children:
                todo.extend(children)
    return out


def resolve_refs(refs: Iterable[ImportRef], is_module: Callable[[str], bool]) -> set[str]:
    """Module names that ``refs`` bind: ``from X import n`` depends on ``X.n`` when that
    is a module, else on ``X``."""
    deps: set[str] = set()
    for base, names in refs:
        if not names:
            deps.add(base)
            continue
        for name in names:
            sub = f"{base}.{name}"
            if name != "*" and is_module(sub):
                deps.add(sub)
            else:
                deps.add(base)
    return deps


class Graph:
    """Importer → imported edges between module names, with the reverse index.

    Owned by the engine's reload path (one writer at a time, under its reload lock);
    readers on other threads get the edges as last published (:meth:`published`).
    """

    def __init__(self) -> None:
        self._deps: dict[str, frozenset[str]] = {}
        self._importers: dict[str, set[str]] = {}
        # What readers see (:meth:`publish`), and the modules changed since.
        self._published: dict[str, frozenset[str]] = {}
        self._unpublished: set[str] = set()

    def set_deps(self, module: str, deps: Iterable[str]) -> None:
        new = frozenset(d for d in deps if d != module)
        old = self._deps.get(module, frozenset())
        for gone in old - new:
            users = self._importers.get(gone)
            if users is not None:
                users.discard(module)
                if not users:
                    del self._importers[gone]
        for dep in new - old:
            self._importers.setdefault(dep, set()).add(module)
        self._deps[module] = new
        self._unpublished.add(module)

    def remove(self, module: str) -> None:
        self.set_deps(module, ())
        del self._deps[module]

    def __contains__(self, module: object) -> bool:
        return module in self._deps

    def deps(self, module: str) -> frozenset[str]:
        return self._deps.get(module, frozenset())

    def publish(self) -> None:
        """Make the edges changed since the last call visible to :meth:`published`:
        O(changed modules). The caller holds the lock that readers take."""
        for module in self._unpublished:
            deps = self._deps.get(module)
            if deps is None:
                self._published.pop(module, None)
            else:
                self._published[module] = deps
        self._unpublished.clear()

    def published(self) -> dict[str, frozenset[str]]:
        """A copy of the edges as last published (under the lock :meth:`publish` takes)."""
        return dict(self._published)

    def plan(self, changed: Iterable[str], present: Mapping[str, object]) -> list[str]:
        """The changed modules plus every present module that imports one of them,
        transitively, in dependency order (imported before importer). Modules of one
        import cycle come out together, as one unit."""
        todo = [m for m in changed]
        members = set(todo)
        while todo:
            for importer in self._importers.get(todo.pop(), ()):
                if importer in present and importer not in members:
                    members.add(importer)
                    todo.append(importer)
        return [m for scc in self._components(sorted(members), members) for m in scc]

    def reaches(self, module: str, target: str, present: Mapping[str, object]) -> bool:
        """Whether ``target`` imports ``module``, directly or transitively, through
        present modules (the reverse walk :meth:`plan` makes: O(importers))."""
        todo = [module]
        seen = {module}
        while todo:
            name = todo.pop()
            if name == target:
                return True
            for importer in self._importers.get(name, ()):
                if importer in present and importer not in seen:
                    seen.add(importer)
                    todo.append(importer)
        return False

    def order(self, present: Mapping[str, object]) -> list[str]:
        """All present modules in dependency order."""
        names = sorted(present)
        return [m for scc in self._components(names, set(names)) for m in scc]

    def _components(self, nodes: list[str], members: set[str]) -> list[list[str]]:
        """Tarjan's strongly connected components, iteratively (deep trees must not hit
        the recursion limit). Components come out dependencies first."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        out: list[list[str]] = []
        counter = 0
        for root in nodes:
            if root in index:
                continue
            work: list[tuple[str, list[str]]] = []
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            work.append((root, sorted(d for d in self.deps(root) if d in members)))
            while work:
                node, children = work[-1]
                if children:
                    child = children.pop()
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, sorted(d for d in self.deps(child) if d in members)))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    scc: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        scc.append(member)
                        if member == node:
                            break
                    out.append(sorted(scc))
        return out
