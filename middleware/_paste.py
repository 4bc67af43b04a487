"""PasteDeploy ``.ini`` files as targets, as ``pserve`` takes them.

``development.ini`` (or ``development.ini#name`` for ``[app:name]``) names an
application factory (``use = egg:myproject``, ``use = call:myproject:main`` or
``paste.app_factory = myproject:main``) and its settings. This module reads the file
with PasteDeploy's own parser (defaults, ``%(here)s`` interpolation, ``set``/``get``
options) but resolves the factory to a ``"module:function()"`` target *without
importing it*: the engine must be the one that imports the application's modules,
or they would never be reloadable. The engine then calls the factory with
``(global_config, **settings)`` for every generation (``Reloader(factory_args=...,
factory_kwargs=...)``).

PasteDeploy stays optional: it is imported only for an ``.ini`` target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..reloader import TargetError

#: The protocol of ``[app:...]`` sections; composite apps, pipelines and filters are
#: refused with a message rather than served without their filters.
_APP_FACTORY = "paste.app_factory"


@dataclass(frozen=True)
class IniTarget:
    """What an ``.ini`` target resolves to."""

    path: Path
    name: str  # the app section's name: "main" for [app:main]
    factory: str  # "package.module:function()", for the engine
    global_config: dict[str, str]
    settings: dict[str, str]
    #: The ``[server:main]`` section's options (``listen``, ``host``, ``port``...), if any.
    server: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.factory.partition(":")[0]

    def port(self) -> int | None:
        """The port that ``[server:main]`` asks for (``port =`` or the first ``listen =``)."""
        listen = self.server.get("listen", "").split()
        text = self.server.get("port") or (listen[0].rpartition(":")[2] if listen else "")
        return int(text) if text.isdigit() else None


def is_ini_target(target: str) -> bool:
    """True for ``file.ini`` and ``file.ini#name`` (anything else is ``module:attr``)."""
    return target.partition("#")[0].strip().endswith(".ini")


def load_ini_target(target: str) -> IniTarget:
    """Read an ``.ini`` target; raise :class:`TargetError` with one line naming the file."""
    file, _, name = target.strip().partition("#")
    name = name or "main"
    path = Path(file).resolve()
    if not path.is_file():
        raise TargetError(f"cannot read {file}: no such file")
    try:
        from paste.deploy import loadwsgi
    except ImportError:
        raise TargetError(
            f"cannot serve {file}: reading .ini files needs PasteDeploy (pip install PasteDeploy)"
        ) from None

    class Loader(loadwsgi.ConfigLoader):  # type: ignore[misc]
        """PasteDeploy's config loader, except that it names factories instead of
        importing them (``egg:`` and ``call:`` references, explicit factories)."""

        def get_context(self, object_type: Any, name: str | None = None, global_conf: Any = None) -> Any:
            if name and self.absolute_name(name):
                scheme, _, spec = name.partition(":")
                if scheme.lower() in ("egg", "call"):
                    factory = _egg_factory(spec, path) if scheme.lower() == "egg" else spec
                    return loadwsgi.LoaderContext(
                        factory, object_type, None, dict(global_conf or {}), {}, self
                    )
                raise TargetError(f"{path}: 'use = {name}' is not supported by hotmod (egg: or call: only)")
            return super().get_context(object_type, name, global_conf)

        def _context_from_explicit(
            self, object_type: Any, local_conf: dict[str, str], global_conf: Any, additions: Any, section: str
        ) -> Any:
            factory = local_conf.pop(_APP_FACTORY, None)
            if factory is None:
                raise TargetError(
                    f"{path}: section [{section}] names no application factory ('use = egg:project',"
                    f" 'use = call:module:function' or '{_APP_FACTORY} = module:function')"
                )
            return loadwsgi.LoaderContext(factory, object_type, _APP_FACTORY, global_conf, local_conf, self)

    try:
        loader = Loader(str(path))
        section = loader.find_config_section(loadwsgi.APP, name)
        if section.partition(":")[0] not in ("app", "application") or loader.parser.has_option(
            section, "filter-with"
        ):
            raise TargetError(
                f"{path}: [{section}] is not a plain [app:{name}] section; pipelines, filters and"
                " composite apps are not supported by hotmod: name the app section (file.ini#name)"
            )
        context = loader.get_context(loadwsgi.APP, name)
        server = _server_options(loader, loadwsgi.SERVER)
    except TargetError:
        raise
    except (LookupError, ValueError, OSError) as exc:  # configparser's errors are ValueErrors
        raise TargetError(f"cannot serve {file}: {exc}") from None
    if context.protocol != _APP_FACTORY:
        raise TargetError(f"{path}: [{section}] is a {context.protocol}, not a {_APP_FACTORY}")
    try:
        entry = metadata.EntryPoint(name="", group=_APP_FACTORY, value=context.object)
        module, attr = entry.module, entry.attr
    except (AttributeError, ValueError):
        raise TargetError(f"{path}: {context.object!r} is not of the form 'module:function'") from None
    return IniTarget(
        path=path,
        name=name,
        factory=f"{module}:{attr}()",
        global_config={str(k): str(v) for k, v in context.global_conf.items()},
        settings={str(k): str(v) for k, v in context.local_conf.items()},
        server=server,
    )


def _egg_factory(spec: str, path: Path) -> str:
    """The ``module:function`` of a distribution's ``paste.app_factory`` entry point,
    read from its metadata (``egg:myproject`` or ``egg:myproject#name``)."""
    dist_name, _, entry_name = spec.partition("#")
    entry_name = entry_name or "main"
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise TargetError(
            f"{path}: 'use = egg:{spec}': no installed distribution {dist_name!r} (install the"
            f" project, e.g. pip install -e ., or write 'use = call:{dist_name}:main')"
        ) from None
    for entry in dist.entry_points:
        if entry.group == _APP_FACTORY and entry.name == entry_name:
            return entry.value
    raise TargetError(f"{path}: distribution {dist_name!r} has no {_APP_FACTORY} entry point {entry_name!r}")


def _server_options(loader: Any, server_type: Any) -> dict[str, str]:
    try:
        section = loader.find_config_section(server_type, name="main")
    except LookupError:
        return {}
    defaults = loader.parser.defaults()
    return {
        key: loader.parser.get(section, key)
        for key in loader.parser.options(section)
        if key not in defaults
    }


def default_roots(target: IniTarget, package_root: Path) -> list[str]:
    """The folder of the ``.ini`` file, and the package's folder when it lies elsewhere."""
    roots = [str(target.path.parent)]
    if not str(package_root.resolve()).startswith(str(target.path.parent) + os.sep):
        roots.append(str(package_root))
    return roots
