"""Swapping: what a loaded plan changes outside its generation, in one step.

The registry and the graph learn the plan's modules; ``sys.modules`` and the
attributes of packages shared between generations are pointed at the new
instances. The engine then publishes the generation with one assignment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType

from ._graph import Graph, resolve_refs
from ._loader import Stage
from ._registry import Registry
from ._retire import Replaced


def replaced_instances(
    stage: Stage, base: Mapping[str, ModuleType], deleted: Iterable[str], registry: Registry
) -> list[Replaced]:
    """Each instance the plan replaces or deletes; read before :func:`record_plan`
    moves the records on."""
    out = []
    for name in [*stage.fresh, *sorted(deleted)]:
        old = base.get(name)
        if old is None:
            continue
        record = registry.get(name)
        born = record.born if record is not None else 1
        since = record.lineage if record is not None and record.lineage is not None else born
        out.append(Replaced(old, name, born, since, purge=name not in stage.cloned))
    return out


def record_plan(
    stage: Stage, deleted: Iterable[str], registry: Registry, graph: Graph, number: int, since: float
) -> None:
    """The registry and the graph after the plan: its modules' files, contents and
    edges, the modules it deleted gone, those it loaded past the engine adopted."""
    for name in stage.fresh:
        source = stage.sources[name]
        known = registry.file(name)
        real = known if known == source.path else os.path.realpath(source.path)
        record = registry.record(name, real, number)
        record.loaded(source)
        record.compiled = stage.compiled.get(name)
        if name not in stage.cloned:
            record.lineage = number
        graph.set_deps(
            name,
            resolve_refs(stage.refs.get(name, ()), stage.is_module) | registry.by_name.get(name, set()),
        )
    for name in deleted:
        registry.forget(name)
        if name in graph:
            graph.remove(name)
    registry.replace_readers(set(stage.fresh) | set(deleted), stage.opened)
    for name, module in stage.adopted.items():
        registry.adopt(graph, name, module, number, since)
    for importer, names in stage.by_name.items():
        registry.note_by_name(graph, importer, names)


def bind_packages(
    stage: Stage, base: Mapping[str, ModuleType], deleted: Iterable[str], registry: Registry
) -> None:
    """Package attributes: fresh children on shared parents, shared children on fresh
    parents (a re-executed ``__init__`` lost them); deleted modules leave
    ``sys.modules`` and their parent."""
    table = stage.table
    for name, module in stage.fresh.items():
        parent_name, _, child = name.rpartition(".")
        parent = table.get(parent_name) or sys.modules.get(parent_name)
        if parent is not None:
            setattr(parent, child, module)
    for package in (n for n, m in stage.fresh.items() if hasattr(m, "__path__")):
        for name in registry.children(package):
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


def forget_sys_modules(modules: Mapping[str, ModuleType], others: Iterable[Mapping[str, ModuleType]]) -> None:
    """Point ``sys.modules`` at another engine's instance where one exists (``others``:
    the current modules of the other live engines), so that closing one engine never
    breaks another one serving the same app; else drop the name."""
    tables = list(others)
    for name, module in modules.items():
        if sys.modules.get(name) is not module:
            continue
        for table in tables:
            replacement = table.get(name)
            if replacement is not None:
                sys.modules[name] = replacement
                break
        else:
            del sys.modules[name]
