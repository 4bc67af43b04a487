"""Flask support.

* Templates: the template folders of the app and of each blueprint are watched, with
  their sub-folders. An
  edit there runs no Python: Jinja reloads the template itself
  (``TEMPLATES_AUTO_RELOAD`` is turned on unless the app set it; Jinja then checks the
  template file on each render), and the environment's cache is cleared when the
  watcher reports the edit. A ``--extra`` glob that matches these files reloads no
  module either: the files are Flask's, not the readers'.
* Debug mode: ``PROPAGATE_EXCEPTIONS`` is turned on (unless the app set it), so an
  exception raised by a view reaches ``HotReload``, which answers with its traceback
  page instead of Flask's bare 500 (what ``flask run --debug`` does, without the
  interactive console). Production mode leaves the app's configuration alone.

Every generation's apps are configured: the target when it is a ``Flask`` app, and
module-level ``Flask`` apps of the modules the plan loaded afresh. No app object is
kept here between calls: that would keep old generations alive.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from ...reloader import Generation, Reloader
from . import FrameworkSupport


class FlaskSupport(FrameworkSupport):
    framework = "flask"

    def __init__(self, reloader: Reloader) -> None:
        super().__init__(reloader)
        generation = reloader.current
        apps = self._apps(generation.target, generation.modules.values())
        self._template_dirs = self._template_dirs_of(apps)

    def _apps(self, target: Any, modules: Iterable[ModuleType]) -> list[Any]:
        from flask import Flask

        found: list[Any] = [target] if isinstance(target, Flask) else []
        for module in modules:
            for value in list(vars(module).values()):
                if isinstance(value, Flask) and not any(value is app for app in found):
                    found.append(value)
        return found

    def _template_dirs_of(self, apps: Iterable[Any]) -> list[str]:
        """The app's and its blueprints' template folders that lie inside the roots."""
        dirs: list[str] = []
        for app in apps:
            for owner in (app, *app.iter_blueprints()):
                if not owner.template_folder:
                    continue
                folder = os.path.realpath(os.path.join(owner.root_path, owner.template_folder))
                if os.path.isdir(folder) and folder not in dirs and self.reloader.roots.root_of(folder):
                    dirs.append(folder)
        return dirs

    def _configure(self, apps: Iterable[Any]) -> None:
        for app in apps:
            if app.config.get("TEMPLATES_AUTO_RELOAD") is None:
                app.config["TEMPLATES_AUTO_RELOAD"] = True
                if "jinja_env" in vars(app):  # already built: it read the setting then
                    app.jinja_env.auto_reload = True
            if self.debug and app.config.get("PROPAGATE_EXCEPTIONS") is None:
                app.config["PROPAGATE_EXCEPTIONS"] = True

    def attached(self) -> None:
        generation = self.reloader.current
        self._configure(self._apps(generation.target, generation.modules.values()))

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        fresh = [generation.modules[name] for name in plan if name in generation.modules]
        self._configure(self._apps(generation.target, fresh))

    def extra(self) -> Sequence[str]:
        # Every file at any depth: render_template("main/page.html") is as common as
        # "page.html", and with TEMPLATES_AUTO_RELOAD off only this refresh clears Jinja's cache.
        return [os.path.join(folder, "**", "*") for folder in self._template_dirs]

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        mine = [
            path
            for path in paths
            if any(os.path.realpath(path).startswith(folder + os.sep) for folder in self._template_dirs)
        ]
        if mine:
            generation = self.reloader.current
            for app in self._apps(generation.target, generation.modules.values()):
                if "jinja_env" in vars(app) and app.jinja_env.cache is not None:
                    app.jinja_env.cache.clear()
        return mine
