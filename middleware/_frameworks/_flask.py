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

* Flask-SQLAlchemy (and SQLAlchemy's declarative models): a plan that loads afresh a
  module defining mapped classes (``db.Model`` subclasses) or holding ``Table``
  objects also loads afresh the module that created the shared ``SQLAlchemy()``
  object (or ``MetaData``, or declarative base) they were declared on, with its
  importers. The new generation gets a fresh ``db`` with a fresh ``MetaData``: re-running
  ``models.py`` on the old one fails with "Table 'user' is already defined for this
  MetaData instance". The new ``db`` makes new engines for the new app.
* A retired generation's apps release their database connections at retirement, not
  at the next garbage collection: each Flask app of the retired generation that the
  current generation does not use has its Flask-SQLAlchemy engines (``db.engines``,
  one per bind) disposed, which closes their pooled connections.

Every generation's apps are configured: the target when it is a ``Flask`` app (or
the ``Flask`` app that WSGI middleware around it wraps), and module-level ``Flask``
apps of the modules the plan loaded afresh. No app object is kept here between
calls: that would keep old generations alive.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from ...reloader import Generation, Reloader
from . import FrameworkSupport

log = logging.getLogger("hotmod.frameworks")

#: How many objects deep WSGI middleware around the target is searched for the
#: ``Flask`` app it wraps (``ProxyFix(app)``, ``DispatcherMiddleware(app, {...})``),
#: and how many objects that search may look at in all.
WRAPPER_DEPTH = 3
WRAPPER_OBJECTS = 200


class FlaskSupport(FrameworkSupport):
    framework = "flask"

    def __init__(self, reloader: Reloader) -> None:
        super().__init__(reloader)
        generation = reloader.current
        apps = self._apps(generation.target, generation.modules.values())
        self._template_dirs = self._template_dirs_of(apps)

    def _apps(self, target: Any, modules: Iterable[ModuleType]) -> list[Any]:
        from flask import Flask

        found: list[Any] = wrapped_apps(target, Flask)
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

    # -- Flask-SQLAlchemy ----------------------------------------------------------------

    def expand_plan(self, plan: Sequence[str], current: dict[str, ModuleType]) -> list[str]:
        """The modules holding what the plan's models are declared on (``db``, its
        ``MetaData``): they run again, and so do their importers up to the factory.
        A plan without mapped classes or tables costs a look at its own globals."""
        if "sqlalchemy" not in sys.modules:
            return []
        declared = Declarations.of((name, current[name]) for name in plan if name in current)
        if not declared:
            return []
        planned = set(plan)
        holders = {name for name, module in current.items()
                   if name not in planned and declared.held_by(module)}
        return sorted(holders)

    def retired(self, generation: Generation) -> None:
        """Dispose the engines of the retired generation's apps that the current
        generation does not use (on the janitor thread)."""
        if "flask_sqlalchemy" not in sys.modules:
            return
        current = self.reloader.current
        now = current.modules
        # Shared instances hold the current generation's apps; a replaced instance's
        # successor may hold one it was handed by __mp_clone__.
        gone = {name: module for name, module in generation.modules.items() if now.get(name) is not module}
        keep = self._apps(current.target, [now[name] for name in gone if name in now])
        for app in self._apps(generation.target, gone.values()):
            if not any(app is kept for kept in keep):
                dispose_engines(app, generation.number)


def wrapped_apps(target: Any, flask: type) -> list[Any]:
    """The ``Flask`` apps that ``target`` is or wraps. WSGI middleware keeps what it
    wraps as an attribute (werkzeug's ``ProxyFix`` and ``DispatcherMiddleware`` as
    ``.app``, the latter's mounts in a dict, WhiteNoise as ``.application``), a bound
    method (``ProxyFix(app.wsgi_app)``) or a closure cell: followed ``WRAPPER_DEPTH``
    objects deep."""
    found: list[Any] = []
    seen: set[int] = set()
    layer = [target]
    for _ in range(WRAPPER_DEPTH + 1):
        below: list[Any] = []
        for obj in layer:
            if id(obj) in seen or len(seen) >= WRAPPER_OBJECTS:
                continue
            seen.add(id(obj))
            if isinstance(obj, flask):
                found.append(obj)
                continue
            if isinstance(obj, (type, ModuleType, str, bytes)):
                continue
            below.extend(_wrapped_by(obj))
        layer = below
    return found


def _wrapped_by(obj: Any) -> list[Any]:
    """What ``obj`` holds, read without running its attribute hooks: a proxy such as
    werkzeug's ``LocalProxy`` (``current_app``) raises on any attribute outside a
    request."""
    inside: list[Any] = []
    if isinstance(obj, types.MethodType):
        inside.append(obj.__self__)
    elif isinstance(obj, types.FunctionType):
        for cell in obj.__closure__ or ():
            try:
                inside.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    try:
        attributes = object.__getattribute__(obj, "__dict__")
    except AttributeError:  # no __dict__ (slots, builtins, proxies)
        return inside
    if isinstance(attributes, dict):
        for value in list(attributes.values()):
            inside.extend(list(value.values()) if isinstance(value, dict) else [value])
    return inside


def dispose_engines(app: Any, number: int) -> None:
    """Dispose the Flask-SQLAlchemy engines of ``app`` (one per bind), in its app
    context, through ``db.engines``: their pooled connections close now, not when the
    garbage collector finds the app. A connection still checked out (a request of a
    draining generation) is closed when it is returned."""
    db = app.extensions.get("sqlalchemy")
    if db is None or not hasattr(type(db), "engines"):  # engines: Flask-SQLAlchemy 3
        return
    with app.app_context():
        engines = dict(db.engines)
    for engine in engines.values():
        engine.dispose()
    if engines:
        # Strings only: a handler that keeps records must not keep the app alive.
        names = ", ".join(
            f"{key or 'default'} ({engine.url.render_as_string(hide_password=True)})"
            for key, engine in engines.items()
        )
        log.debug("generation %d retired: disposed the SQLAlchemy engines of Flask app %s: %s",
                  number, str(app.name), names)


class Declarations:
    """What planned modules declare SQLAlchemy tables on: the registries of the mapped
    classes they define (a ``db.Model`` subclass) and the ``MetaData`` of those and
    of the ``Table`` objects they hold. Running such a module again on the same
    registry and ``MetaData`` fails ("Table 'user' is already defined for this
    MetaData instance") or leaves two classes of one name in the registry; a fresh
    process would run it on fresh ones."""

    def __init__(self) -> None:
        self.registries: dict[int, Any] = {}
        self.metadatas: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.registries or self.metadatas)

    @classmethod
    def of(cls, modules: Iterable[tuple[str, ModuleType]]) -> Declarations:
        import sqlalchemy

        found = cls()
        for name, module in modules:
            for value in list(vars(module).values()):
                if isinstance(value, sqlalchemy.Table):
                    found.metadatas[id(value.metadata)] = value.metadata
                elif isinstance(value, type) and value.__module__ == name:
                    mapper: Any = sqlalchemy.inspect(value, raiseerr=False)
                    if mapper is not None and hasattr(mapper, "registry"):
                        found.registries[id(mapper.registry)] = mapper.registry
                        found.metadatas[id(mapper.registry.metadata)] = mapper.registry.metadata
        return found

    def held_by(self, module: ModuleType) -> bool:
        """Whether ``module`` holds what the declarations were made on: the
        ``SQLAlchemy()`` object, the ``MetaData``, the ``registry`` or the declarative
        base class (so its code made them, or imports them and runs again anyway)."""
        import sqlalchemy.orm

        fsa = sys.modules.get("flask_sqlalchemy")
        for value in list(vars(module).values()):
            if isinstance(value, (sqlalchemy.MetaData, sqlalchemy.orm.registry)):
                if self.metadatas.get(id(value)) is value or self.registries.get(id(value)) is value:
                    return True
            elif fsa is not None and isinstance(value, fsa.SQLAlchemy):
                if self._owns(value.metadatas, getattr(value.Model, "registry", None)):
                    return True
            elif isinstance(value, type) and sqlalchemy.inspect(value, raiseerr=False) is None:
                if self._owns({None: getattr(value, "metadata", None)}, getattr(value, "registry", None)):
                    return True  # a declarative base
        return False

    def _owns(self, metadatas: Mapping[Any, Any], registry: Any) -> bool:
        if registry is not None and self.registries.get(id(registry)) is registry:
            return True
        return any(
            self.metadatas.get(id(m)) is m for m in metadatas.values() if m is not None
        )
