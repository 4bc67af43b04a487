"""Planning: from a batch of changed files to the modules to load afresh.

A file maps to its module (or, for an extra file, to the modules that opened it);
a module whose content did not change is left out; the plan is the changed modules
plus every present module that imports one, in dependency order, grown by what
extensions add, and checked for restart-only modules before anything runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ._extension import Extension, restart_flag
from ._graph import Graph
from ._loader import Source
from ._registry import Registry
from ._roots import ExtraGlobs, Roots
from ._signature import RACY_SECONDS, signature_of
from .errors import SourceChanged

log = logging.getLogger("hotmod")

@dataclass
class Changes:
    """Modules whose files changed, modules whose files are gone, and the sources
    read on the way (the plan loads exactly what was compared)."""

    changed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    sources: dict[str, Source] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted)


def modules_of(
    paths: Sequence[str], registry: Registry, roots: Roots, extra: ExtraGlobs, target_module: str
) -> tuple[set[str], bool]:
    """The modules behind ``paths``, and whether an extra file named them (their own
    source then did not change, and they are loaded regardless)."""
    names: set[str] = set()
    force = False
    for path in paths:
        real = os.path.realpath(path)
        name = registry.name_at(real)
        if name is None and real != path:
            # The file a module was loaded from now leads elsewhere (it became a
            # symlink): find_changes() says why it is not loaded.
            name = registry.name_at(os.path.abspath(path))
        if name is not None:
            names.add(name)
            continue
        # Code is only ever loaded from the roots; a config file outside them counts
        # when an absolute extra pattern names it.
        root = roots.root_of(real)
        if root is not None:
            wanted = roots.contains(real) and (real in registry.readers or extra.match(real, root))
        else:
            wanted = extra.match(real, None)
        if wanted:
            names.update(registry.readers.get(real) or {target_module})
            force = True
    return names, force


def find_changes(
    names: Collection[str],
    registry: Registry,
    roots: Roots,
    *,
    force: bool,
    scan: bool,
    empty_ok: Collection[Path | str] = (),
    probe: bool = False,
) -> Changes:
    """Compare the files of ``names`` with what was loaded. ``scan``: a look at every
    module, which skips files whose stat signature is unchanged; ``force``: every
    named module counts as changed; ``probe``: only say which changed (nothing is
    noted, an empty file is not questioned)."""
    empty = {os.path.realpath(p) for p in empty_ok}
    out = Changes()
    for name in sorted(names):
        record = registry.get(name)
        if record is None:
            continue
        path = record.file
        try:
            if scan:
                st = os.stat(path)
                same = signature_of(st) == record.signature
                # A file modified within the mtime tick of its read may have changed
                # again in that tick with the same size (git's "racy clean"): hash it.
                racy = record.read_at - st.st_mtime_ns / 1e9 < RACY_SECONDS
                if same and not racy:
                    continue
            if not roots.contains(path):
                _left_roots(registry, name, path)
                continue
            source = Source.read(path)
        except FileNotFoundError:
            out.deleted.add(name)
            continue
        if not force and source.digest in (record.digest, registry.restart_digests.get(name)):
            record.signature, record.read_at = source.signature, time.time()
            continue
        if probe:
            out.changed.add(name)
            continue
        if not source.data and record.signature[0] > 0 and path not in empty:
            # Non-empty before, empty now: most likely an in-place save between its
            # truncate and its write. Believe it only when seen twice in one state.
            if registry.empty_seen.get(path) != source.signature:
                registry.empty_seen[path] = source.signature
                raise SourceChanged(f"{path} is empty (a write in progress?)")
        registry.empty_seen.pop(path, None)
        out.changed.add(name)
        out.sources[name] = source
    return out


def _left_roots(registry: Registry, name: str, path: str) -> None:
    """``path`` now leads outside the roots (it became a symlink, or a folder on the
    way did): its code is never loaded, and the current instance stays. Its new
    signature is noted so that a scan does not report it again and again."""
    st = os.stat(path)
    record = registry.get(name)
    if record is not None:
        record.signature, record.read_at = signature_of(st), time.time()
    log.warning(
        "%s now leads to %s, outside the watched roots: it is not loaded;"
        " %s keeps the instance it has", path, os.path.realpath(path), name,
    )


def plan(
    graph: Graph, changes: Changes, modules: Mapping[str, ModuleType], extensions: Sequence[Extension]
) -> list[str]:
    """The modules to load afresh for ``changes``: the graph's plan, grown by what
    extensions add (with their importers), less the deleted modules, plus any changed
    module the graph does not know yet (a stray adopted in this reload)."""
    changed = changes.changed | changes.deleted
    planned = graph.plan(changed, modules)
    wanted = set(changed)
    for extension in extensions:
        more = {m for m in extension.expand_plan(planned, dict(modules)) if m in modules}
        if more - set(planned):
            wanted |= more
            planned = graph.plan(wanted, modules)
    planned = [m for m in planned if m not in changes.deleted]
    planned += [m for m in changes.changed if m not in planned]
    return planned


def reverted(registry: Registry, attempted: Iterable[str]) -> bool:
    """Whether the files of ``attempted`` (a failed plan's modules) are all back to
    what the current generation loaded."""
    for name in attempted:
        record = registry.get(name)
        try:
            if record is None or Source.read(record.file).digest != record.digest:
                return False
        except (OSError, SourceChanged):
            return False
    return True


def restart_reasons(
    planned: Sequence[str],
    modules: Mapping[str, ModuleType],
    registry: Registry,
    extensions: Sequence[Extension],
) -> dict[str, str]:
    """Module → why loading it afresh needs a restart, for the restart-only modules
    of the plan (its own ``__hotmod_restart__`` flag, an extension, or stale code an
    earlier instance left reachable from outside the generations)."""
    reasons: dict[str, str] = {}
    for name in planned:
        module = modules.get(name)
        stale = registry.stale.reason(name)
        if stale is not None:
            reasons[name] = f"an earlier reload of it left old code in use outside the generations ({stale})"
            continue
        reason = restart_flag(module) if module is not None else None
        for extension in extensions:
            if reason is not None:
                break
            reason = extension.restart_reason(name, registry.file(name) or "")
        if reason is not None:
            reasons[name] = reason
    return reasons
