"""Extension points: how support for a framework (or anything else) takes part in
reloading without the engine knowing what a framework is.

An :class:`Extension` is given to :meth:`Reloader.extend`. Every method has a
do-nothing default, so a subclass overrides only what it needs. The engine calls
them on its reload path (one reload at a time, under its reload lock); an
extension's method that raises is logged with its traceback and counts as a failed
plan when it ran before the swap, and is only logged when it ran after it. The
exception is :meth:`Extension.retired`, which the engine's janitor thread calls, off
the reload path and never on a caller's.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._generation import Generation

log = logging.getLogger("hotmod")

#: The module-level flag of the hook contract (docs/hooks.md): a module that sets it
#: to a true value (``True``, or a string saying why) is *restart-only*: a plan that
#: would load it afresh is not swapped in-process; a ``restart_needed`` event is
#: published instead, and the last generation keeps serving.
RESTART_FLAG = "__hotmod_restart__"


class Extension:
    """Base class of the engine's extension points. All methods are optional."""

    #: A short name for log lines and the status document ("django", "bottle").
    name = "extension"

    def roots(self) -> Sequence[str]:
        """Folders to watch and reload from, besides the engine's own roots. Modules
        already loaded from them are taken into the current generation."""
        return ()

    def extra(self) -> Sequence[str]:
        """Glob patterns of non-Python files to watch (templates, say)."""
        return ()

    def restart_reason(self, module: str, path: str) -> str | None:
        """Why loading ``module`` (from ``path``) afresh needs a process restart, or
        None when it may be swapped in-process. Asked for every module of a plan,
        importers included, before anything of the plan runs."""
        return None

    def expand_plan(self, plan: Sequence[str], current: dict[str, ModuleType]) -> Iterable[str]:
        """Modules to load afresh too (with their importers), given the planned ones
        and the current generation's instances: for one, the module that creates a
        shared object the plan's code registers itself on."""
        return ()

    def before_plan(self, plan: Sequence[str]) -> None:
        """Called right before the plan's modules execute, on the reloading thread."""

    def prepare(self, generation: Generation, plan: Sequence[str]) -> None:
        """Called once ``generation``'s modules have run and its ``target`` is resolved,
        right before it becomes current: make the new target ready to serve (an ASGI
        app's lifespan startup). Raising fails the plan like an exception of its code:
        nothing is swapped, the error is reported with its file and line, and the last
        good generation keeps serving. So undo here what a failure leaves half done."""

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        """Called right after ``generation`` became current (reset registries and
        caches that still name the old instances)."""

    def after_discard(self, plan: Sequence[str]) -> None:
        """Called after a plan was thrown away (its code failed): undo
        :meth:`before_plan`."""

    def retiring(self, generation: Generation) -> None:
        """Called once ``generation`` has drained (or was retired by ``drain_timeout``),
        before the purge hooks it made due run: stop what its target started (an ASGI
        app's lifespan shutdown), while the module resources it may use are still
        open. Not called for the generation current at :meth:`Reloader.close`. Runs on
        the engine's janitor thread; an exception is logged with its traceback."""

    def retired(self, generation: Generation) -> None:
        """Called once ``generation`` has retired (drained, or forced at shutdown or by
        ``drain_timeout``) and the purge hooks it made due have run: release what only
        its objects used (the engines of the apps it built, say). Its ``target`` and
        ``modules`` are still there during the call and dropped right after it.

        Runs on the engine's janitor thread, never on a caller's (nor on the reload
        path); the reload path may be building the next generation meanwhile. An
        exception is logged with its traceback, never raised."""

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        """Non-Python files changed: return those this extension made current itself
        (a template cache cleared, say), without running any module code. The others
        go through the engine's ``extra`` rule (their readers are reloaded)."""
        return ()

    def describe(self) -> dict[str, Any]:
        """What the status document shows for this extension."""
        return {"name": self.name}


def restart_flag(module: ModuleType) -> str | None:
    """The reason a module's own ``__hotmod_restart__`` flag gives, or None."""
    value = vars(module).get(RESTART_FLAG)
    if not value:
        return None
    return value if isinstance(value, str) else "the module declares __hotmod_restart__"


def refresh(
    extensions: Iterable[Extension], paths: Iterable[str | os.PathLike[str]]
) -> tuple[list[str], list[str]]:
    """Hand changed non-Python files to the extensions, in order: ``(handled, left)``,
    where ``left`` is what no extension made current (Python files first)."""
    named = [os.fspath(p) for p in paths]
    others = [p for p in named if p.endswith(".py")]
    rest = [p for p in named if not p.endswith(".py")]
    handled: list[str] = []
    for extension in extensions:
        if not rest:
            break
        try:
            done = set(extension.refresh(list(rest)))
        except Exception:
            log.error("extension %s failed to refresh %s:\n%s", extension.name,
                      ", ".join(rest), traceback.format_exc())
            continue
        handled += [p for p in rest if p in done]
        rest = [p for p in rest if p not in done]
    return handled, others + rest


def retired(extensions: Iterable[Extension], generation: Generation, *, hook: str = "retired") -> None:
    """Tell each extension that ``generation`` retired (:meth:`Extension.retired`), or
    with ``hook="retiring"``, that it is about to (:meth:`Extension.retiring`)."""
    for extension in extensions:
        try:
            getattr(extension, hook)(generation)
        except Exception:
            log.error("extension %s failed %s generation %d retired:\n%s", extension.name,
                      "after" if hook == "retired" else "before", generation.number, traceback.format_exc())


__all__ = ["RESTART_FLAG", "Extension", "refresh", "restart_flag", "retired"]
