"""Adoption: modules of the roots that were loaded past the engine join the current
(or the next) generation, as if loaded with it.

``_imports`` sees them come in; these functions take them into the generation, the
registry and the graph. Each runs on the reload path, under the engine's reload
lock; the caller publishes the graph's edges afterwards.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING

from ._generation import Generation
from ._graph import Graph
from ._imports import ImportSight, modules_in_roots
from ._loader import Stage
from ._registry import Registry
from ._roots import Roots

if TYPE_CHECKING:
    from ._engine import Reloader


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


def held(reloader: Reloader, name: str, module: ModuleType) -> list[str]:
    """Take ``module``, an instance loaded past ``reloader`` (a test's own ``import``),
    into its current generation as ``name``, with the instances it stands on: its
    parent packages and the modules of the roots its import statements name, as
    ``sys.modules`` holds them, transitively. Its next reload then hands this very
    instance to ``__mp_clone__``. Modules that import it are left out, and so are
    neither re-executed by its reloads nor touched, unless it stands on them too (a
    parent package whose ``__init__`` imports it runs again, as in a server). The
    target's module depends on it.

    The ``hot_reload`` fixture's way in (reloader/_pytest_plugin.py); it runs under
    the reload lock, as the engine's own adoptions do. The caller has checked that
    ``sys.modules[name] is module`` and that its file lies in the roots. Returns the
    names taken in (those the generation already had are not)."""
    taken: list[str] = []
    with reloader._reload_lock:
        gen = reloader.current
        registry, graph = reloader._registry, reloader._graph
        wanted, seen = [name], set()
        while wanted:
            wanted_name = wanted.pop()
            if wanted_name in seen:
                continue
            seen.add(wanted_name)
            instance = module if wanted_name == name else sys.modules.get(wanted_name)
            file = getattr(instance, "__file__", None)
            if not isinstance(instance, ModuleType) or not file or not reloader.roots.contains(file):
                continue
            if gen.adopt(wanted_name, instance):
                # Since 0: when it was loaded is unknown, so any look at its file reloads it.
                registry.adopt(graph, wanted_name, instance, gen.number, 0.0)
                taken.append(wanted_name)
            parent = wanted_name.rpartition(".")[0]
            wanted += [parent] if parent else []
            wanted += sorted(graph.deps(wanted_name) - seen)
        registry.note_by_name(graph, reloader._module_name, [name])
        reloader._publish_graph()
    return taken
