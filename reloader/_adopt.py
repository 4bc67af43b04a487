"""Adoption: modules of the roots that were loaded past the engine join the current
(or the next) generation, as if loaded with it.

``_imports`` sees them come in; these functions take them into the generation, the
registry and the graph. Each runs on the reload path, under the engine's reload
lock; the caller publishes the graph's edges afterwards.
"""

from __future__ import annotations

import sys
from types import ModuleType

from ._generation import Generation
from ._graph import Graph
from ._imports import ImportSight, modules_in_roots
from ._loader import Stage
from ._registry import Registry
from ._roots import Roots


def adopt(
    gen: Generation, name: str, module: ModuleType, registry: Registry, graph: Graph, since: float
) -> None:
    """``module`` joins ``gen`` (shared from here on, as if loaded with it)."""
    if gen.adopt(name, module):
        registry.adopt(graph, name, module, gen.number, since)


def strays(
    sight: ImportSight, gen: Generation | None, registry: Registry, graph: Graph, target: str
) -> bool:
    """Take into the registry the reloadable modules that were imported outside any
    plan (by the normal machinery, by whatever means): each is a dependency of the
    module whose code imported it, or of the ``target`` module when no reloadable
    code was running (a framework importing a module by name). True if there were
    any (the graph may have changed)."""
    taken = sight.take_strays()
    if not taken or gen is None or gen.table is None:
        return False
    for stray in taken:
        module = sys.modules.get(stray.name)
        file = getattr(module, "__file__", None)
        if module is None or not file or not sight.roots.contains(file):
            continue
        adopt(gen, stray.name, module, registry, graph, stray.at)
        registry.note_by_name(graph, stray.importer or target, [stray.name])
    return True


def loaded(
    gen: Generation | None, roots: Roots, registry: Registry, graph: Graph, target: str, since: float
) -> None:
    """Take into ``gen`` the modules already in ``sys.modules`` whose files lie in
    ``roots`` (roots added after the load): a framework loaded them by name, so the
    ``target`` module depends on them unless an import statement of another
    reloadable module says who does."""
    present = gen.table if gen is not None else None
    if gen is None or present is None:
        return
    found = modules_in_roots(roots, skip=present.__contains__)
    for name, module in sorted(found.items()):
        adopt(gen, name, module, registry, graph, since)
    imported = {d for name in found for d in graph.deps(name)}
    registry.note_by_name(graph, target, [n for n in found if n not in imported])


def imported(stage: Stage, sight: ImportSight) -> None:
    """Take into the plan's new generation the reloadable modules that the plan's
    code loaded past its ``__import__`` (``importlib.import_module``, for one): they
    become reloadable too. Their importers are not known, since no import statement
    names them (see docs/hooks.md)."""
    if not stage.grew_past_own():
        return  # the usual case: no scan of sys.modules, so reloads stay O(plan)
    found = modules_in_roots(sight.roots, skip=stage.table.__contains__, is_own_top=sight.is_own_top)
    stage.table.update(found)
    stage.adopted.update(found)
