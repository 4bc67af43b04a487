"""Bottle support.

Bottle keeps routes on an application object: a shared ``Bottle()`` created in one
module and decorated by others (``@app.route``), or the default application that
``@bottle.route`` decorates. Re-running only the edited module would add its routes
to the old object again (a pile-up, a renamed route still answering, and the old
module kept alive by its callbacks). So a plan that touches a module with routes on
an application also reloads every module that holds that application or has routes
on it: the module that creates a shared application runs again and makes a new one,
and a new default application is pushed before the plan runs. The old generation
keeps its own application until it drains. Bottle's template cache is cleared after
every swap and every template edit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ...reloader import Generation
from . import FrameworkSupport


class BottleSupport(FrameworkSupport):
    framework = "bottle"

    def __init__(self, reloader: Any) -> None:
        super().__init__(reloader)
        # (old, new) default applications while a plan that pushed one runs.
        self._pushed: tuple[Any, Any] | None = None

    @property
    def _bottle(self) -> Any:
        return sys.modules["bottle"]

    # -- templates ------------------------------------------------------------------

    def template_dirs(self) -> list[str]:
        """Bottle's template lookup path, as absolute folders (relative entries are
        relative to the folder the server runs in)."""
        out = []
        for entry in getattr(self._bottle, "TEMPLATE_PATH", ()):
            folder = os.path.realpath(os.path.abspath(entry))
            if os.path.isdir(folder) and folder not in out:
                out.append(folder)
        return out

    def extra(self) -> Sequence[str]:
        return [os.path.join(d, f"*.{ext}") for d in self.template_dirs()
                for ext in self._bottle.BaseTemplate.extensions]

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        extensions = tuple(f".{ext}" for ext in self._bottle.BaseTemplate.extensions)
        dirs = self.template_dirs()
        mine = [p for p in paths if p.endswith(extensions)
                and os.path.dirname(os.path.realpath(p)) in dirs]
        if mine:
            self._bottle.TEMPLATES.clear()
        return mine

    # -- applications -----------------------------------------------------------------

    def _applications(self, current: dict[str, ModuleType]) -> dict[int, tuple[Any, set[str], set[str]]]:
        """id → (application, modules holding it in their globals, modules with
        routes on it), for the applications the current generation can reach."""
        bottle = self._bottle
        apps: dict[int, tuple[Any, set[str], set[str]]] = {}
        default = bottle.default_app()
        apps[id(default)] = (default, set(), set())
        for name, module in current.items():
            for value in list(vars(module).values()):
                if isinstance(value, bottle.Bottle):
                    apps.setdefault(id(value), (value, set(), set()))[1].add(name)
        for app, _holders, routed in apps.values():
            for route in app.routes:
                owner = getattr(route.get_undecorated_callback(), "__module__", None)
                if owner in current:
                    routed.add(owner)
        return apps

    def expand_plan(self, plan: Sequence[str], current: dict[str, ModuleType]) -> list[str]:
        planned = set(plan)
        more: set[str] = set()
        for _app, holders, routed in self._applications(current).values():
            if routed & planned:
                more |= holders | routed
        return sorted(more - planned)

    def before_plan(self, plan: Sequence[str]) -> None:
        bottle = self._bottle
        default = bottle.default_app()
        routed = {getattr(r.get_undecorated_callback(), "__module__", None) for r in default.routes}
        if routed & set(plan):
            # The plan's @bottle.route decorators register on a new default application.
            self._pushed = (default, bottle.app.push())

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        if self._pushed is not None:
            old, _new = self._pushed
            self._pushed = None
            self._remove(old)  # else the stack would keep every old generation alive
        self._bottle.TEMPLATES.clear()

    def after_discard(self, plan: Sequence[str]) -> None:
        if self._pushed is not None:
            _old, new = self._pushed
            self._pushed = None
            self._remove(new)

    def _remove(self, app: Any) -> None:
        stack = self._bottle.app
        for index, item in enumerate(stack):
            if item is app:
                del stack[index]
                return
