"""Django support.

* Watches the project: the folder of ``manage.py`` (apps live beside the settings
  package, not inside it), and the template folders.
* Views, URLconfs, forms and template tags reload in-process; after each swap the
  URL resolver caches and the template engines are reset, so Django imports the
  new instances by name again.
* Models, app configs, settings, migrations and admin registrations are
  restart-only: Django's app registry and admin site take each class once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...reloader import Generation
from . import FrameworkSupport

#: Last component of a module name → why loading it afresh needs a restart.
RESTART_ONLY = {
    "models": "Django models are registered in the app registry once per process",
    "apps": "Django app configs are read once, when the app registry is populated",
    "admin": "Django admin registrations are made once per process",
}


class DjangoSupport(FrameworkSupport):
    framework = "django"

    def __init__(self, reloader: Any) -> None:
        super().__init__(reloader)
        self.settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
        self._project = self._find_project()

    def _find_project(self) -> str | None:
        """The folder of ``manage.py``: beside the settings package, or the folder
        ``hotmod serve`` runs in."""
        candidates: list[Path] = []
        module = sys.modules.get(self.settings_module)
        file = getattr(module, "__file__", None)
        if file:
            package_dir = Path(file).resolve().parent
            depth = self.settings_module.count(".")
            candidates.append(package_dir.parents[depth - 1] if depth else package_dir)
        candidates.append(Path.cwd())
        for folder in candidates:
            if (folder / "manage.py").is_file():
                return str(folder)
        return None

    def roots(self) -> Sequence[str]:
        return [self._project] if self._project else []

    def template_dirs(self) -> list[str]:
        from django.template import engines

        dirs: list[str] = []
        for engine in engines.all():
            for folder in getattr(engine, "template_dirs", ()):
                real = os.path.realpath(folder)
                if os.path.isdir(real) and real not in dirs:
                    dirs.append(real)
        inside = [d for d in dirs if any(d.startswith(r + os.sep) for r in self._all_roots())]
        return inside

    def _all_roots(self) -> list[str]:
        return [*self.reloader.roots.paths, *self.roots()]

    def extra(self) -> Sequence[str]:
        return [os.path.join(d, "**", "*") for d in self.template_dirs()]

    def restart_reason(self, module: str, path: str) -> str | None:
        if self.settings_module and (
            module == self.settings_module or module.startswith(self.settings_module + ".")
        ):
            return "Django settings are read once, at start-up"
        parts = module.split(".")
        if "migrations" in parts[1:]:
            return "Django migrations are loaded by the migration commands, not the server"
        for part in parts[1:]:
            if part in RESTART_ONLY:
                return RESTART_ONLY[part]
        return None

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        dirs = self.template_dirs()
        mine = [p for p in paths if any(os.path.realpath(p).startswith(d + os.sep) for d in dirs)]
        if mine:
            self._reset_template_loaders()
        return mine

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        from django.urls import clear_url_caches, set_urlconf

        clear_url_caches()
        set_urlconf(None)
        self._reset_template_engines()

    def _reset_template_loaders(self) -> None:
        from django.template import engines

        for backend in engines.all():
            engine = getattr(backend, "engine", None)
            for loader in getattr(engine, "template_loaders", ()):
                loader.reset()

    def _reset_template_engines(self) -> None:
        """New engines import their template tag libraries by name again, so they
        get the new instances."""
        from django.template import engines
        from django.template.engine import Engine

        engines._engines = {}
        engines.__dict__.pop("templates", None)
        Engine.get_default.cache_clear()
