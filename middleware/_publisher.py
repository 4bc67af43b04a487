"""``Publisher``: a folder of handler modules served by URL, as mod_python.publisher
served them, reloaded through hotmod's generations, and safe by default.

How it rides on the engine. The engine reloads modules that live in files inside
its watched roots, and resolves one target per generation. A Publisher writes one
small module of its own, the *table module*, into a private temporary folder (a
second root), as the ``__init__.py`` of a package with a unique name
(``_hotmod_publisher_<n>``) whose ``__path__`` is the handler folder. So
``notes.py`` loads as ``_hotmod_publisher_<n>.notes``, never shadowing a module
of the same name elsewhere, and ``from . import _shared`` works between handler
modules. The table module imports every handler module and builds a
:class:`DispatchTable` from the instances it got: the generation's target.

Because it imports them all, the table module is an importer of every handler
module, and the engine's plan re-runs it whenever one of them is edited or
deleted: each generation gets a table of its own instances, and a request pinned
to a generation by :class:`HotReload` dispatches to that generation's functions
only. A new file is not a module the engine knows; the pattern ``*.py`` in the
engine's ``extra`` makes any new ``.py`` file under the roots reload the target's
module, which lists the folder again.

What is published is decided once per generation, when the table is built: a URL
can only reach a function that is in the table, and nothing at request time
walks attributes of user objects.
"""

from __future__ import annotations

import atexit
import html
import importlib.abc
import importlib.util
import inspect
import itertools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from werkzeug.datastructures import CombinedMultiDict, MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from ..reloader import Reloader
from ._app import HotReload
from ._guard import NOTHING_POLICY, PROTECTIVE_HEADERS, HostCheck, host_of

logger = logging.getLogger("hotmod.publisher")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

#: What a URL segment must be to name a handler module or function: a plain ASCII
#: identifier that does not start with ``_``. Everything else (``..``, ``__dict__``,
#: ``%2F``, an empty segment) can never match a published name.
PUBLIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: The methods a handler accepts when it declares none: mod_python.publisher's.
DEFAULT_METHODS = frozenset({"GET", "HEAD", "POST"})
#: Parameters that receive the :class:`werkzeug.Request` instead of a form field
#: (``req`` is mod_python's name for it).
REQUEST_PARAMETERS = frozenset({"request", "req"})
#: The attribute of the table module that holds the generation's DispatchTable.
TABLE_ATTRIBUTE = "__hotmod_dispatch__"

_METHOD = re.compile(r"[A-Z][A-Z-]*\Z")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
_packages = itertools.count(1)

_TABLE_MODULE = '''\
"""The dispatch table of the handler modules in {directory!r}.

Written by hotmod's Publisher into a folder of its own; never edited. It imports
every handler module, so an edit of any of them re-runs it, and the new
generation gets a table of its own instances.
"""
from hotmod.middleware import _publisher as __hotmod_publisher

__path__ = [{directory!r}]
__hotmod_modules__ = {{
    __hotmod_name: getattr(__import__(__name__, globals(), None, (__hotmod_name,)), __hotmod_name)
    for __hotmod_name in __hotmod_publisher.handler_modules(__path__[0])
}}
{attribute} = __hotmod_publisher.DispatchTable(
    __hotmod_modules__, debug={debug!r}, allow_hosts={allow_hosts!r}
)
'''


def handler_modules(directory: str | os.PathLike[str]) -> list[str]:
    """The names of the modules a Publisher of ``directory`` publishes, sorted.

    A handler module is a regular file (not a symlink: nothing outside the folder is
    ever loaded through it) directly in ``directory`` whose name is a public name
    (see :data:`PUBLIC_NAME`) followed by ``.py``.
    """
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if (
                dot
                and suffix == "py"
                and PUBLIC_NAME.match(stem)
                and entry.is_file(follow_symlinks=False)
            ):
                names.append(stem)
    return sorted(names)


# -- the dispatch table of one generation ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    required: bool
    positional_only: bool


class _MissingParameter(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Handler:
    """One published function, with what dispatch needs to know about it, read once
    when its generation's table is built."""

    __slots__ = (
        "allow_header",
        "allowed",
        "function",
        "line",
        "methods",
        "name",
        "parameters",
        "path",
        "reads_fields",
        "takes_any_field",
    )

    def __init__(self, function: FunctionType, module: str, name: str) -> None:
        self.function = function
        #: ``"notes.list"``: the module's file name without ``.py``, and the function.
        self.name = f"{module}.{name}"
        code = inspect.unwrap(function).__code__
        self.path, self.line = code.co_filename, code.co_firstlineno
        self.methods = _declared_methods(function, self.where)
        # HEAD is GET without the body (werkzeug's responses drop it); OPTIONS is
        # answered by the Publisher unless the handler declares it.
        self.allowed = self.methods | {"HEAD"} if "GET" in self.methods else self.methods
        self.allow_header = ", ".join(sorted(self.allowed | {"OPTIONS"}))
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{self.where}: cannot read the parameters of handler {self.name}: {exc}"
            ) from None
        parameters = []
        self.takes_any_field = False
        for parameter in signature.parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                self.takes_any_field = True
            elif parameter.kind is not parameter.VAR_POSITIONAL:
                parameters.append(_Parameter(
                    parameter.name,
                    required=parameter.default is parameter.empty,
                    positional_only=parameter.kind is parameter.POSITIONAL_ONLY,
                ))
        self.parameters = tuple(parameters)
        self.reads_fields = self.takes_any_field or any(
            p.name not in REQUEST_PARAMETERS for p in self.parameters
        )

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __repr__(self) -> str:
        return f"<Handler {self.name} ({self.where}) {sorted(self.allowed)}>"

    def arguments(self, request: Request) -> tuple[list[Any], dict[str, Any]]:
        """The call's arguments: the request for ``request``/``req``, form and query
        fields for the other named parameters (a field given once is a ``str`` or an
        uploaded file, given several times a list), every other field for ``**kwargs``.
        Raises :class:`_MissingParameter` for a required parameter without a field."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if not self.reads_fields:
            for parameter in self.parameters:  # only request parameters here
                if parameter.positional_only:
                    args.append(request)
                else:
                    kwargs[parameter.name] = request
            return args, kwargs
        fields: MultiDict[str, Any] = CombinedMultiDict([request.values, request.files])
        positional_open = True  # a positional-only parameter left to its default ends them
        for parameter in self.parameters:
            if parameter.name in REQUEST_PARAMETERS:
                value: Any = request
            else:
                values = fields.getlist(parameter.name)
                if not values:
                    if parameter.required:
                        raise _MissingParameter(parameter.name)
                    positional_open = positional_open and not parameter.positional_only
                    continue
                value = values[0] if len(values) == 1 else values
            if not parameter.positional_only:
                kwargs[parameter.name] = value
            elif positional_open:
                args.append(value)
        if self.takes_any_field:
            named = {p.name for p in self.parameters}
            for key in fields.keys():
                if key not in named:
                    values = fields.getlist(key)
                    kwargs[key] = values[0] if len(values) == 1 else values
        return args, kwargs


def _declared_methods(function: FunctionType, where: str) -> frozenset[str]:
    """The function's ``methods`` attribute (as Flask reads a view's), validated."""
    declared = vars(function).get("methods")
    if declared is None:
        return DEFAULT_METHODS
    names = (declared,) if isinstance(declared, str) else declared
    try:
        items = list(names)
    except TypeError:
        items = []
    if not items or not all(isinstance(m, str) and _METHOD.match(m.upper()) for m in items):
        raise TypeError(
            f"{where}: {function.__qualname__}.methods must be a method name or a list of"
            f" them, such as ('GET', 'POST'), not {declared!r}"
        )
    return frozenset(m.upper() for m in items)


@dataclass(frozen=True)
class _PublishedModule:
    module: ModuleType
    handlers: Mapping[str, Handler]


def published_functions(module: ModuleType, short_name: str) -> dict[str, Handler]:
    """The functions of ``module`` that URLs may reach, by name.

    A name is published when all of these hold: it is a public name (no leading
    ``_``); the module's ``__all__``, if it defines one, lists it; its value is a
    plain function (not a class, module, builtin, ``functools.partial`` or callable
    object); that function was defined in this module under this very name (so not
    an imported function, an alias, or a lambda bound to a name).
    """
    namespace = vars(module)
    exported = namespace.get("__all__")
    if exported is not None and not (
        isinstance(exported, (list, tuple)) and all(isinstance(n, str) for n in exported)
    ):
        raise TypeError(f"{module.__file__}: __all__ must be a list or tuple of names, not {exported!r}")
    handlers = {}
    for name in exported if exported is not None else list(namespace):
        if _unpublished_because(module, name) is None:
            handlers[name] = Handler(namespace[name], short_name, name)
    return handlers


def _unpublished_because(module: ModuleType, name: str) -> str | None:
    """Why ``name`` of ``module`` is not published, or None when it is. Reads the
    module's namespace only: it calls nothing and follows no attribute of user objects
    other than a function's own ``__name__`` and ``__module__``."""
    if not PUBLIC_NAME.match(name):
        return "only names made of ASCII letters, digits and '_', not starting with '_', are published"
    namespace = vars(module)
    exported = namespace.get("__all__")
    if isinstance(exported, (list, tuple)) and name not in exported:
        return f"the module's __all__ does not list {name!r}"
    if name not in namespace:
        return f"the module defines no {name!r}"
    value = namespace[name]
    if type(value) is not FunctionType:
        kind = type(value).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        return f"{name!r} is {article} {kind}; only functions are published"
    if value.__name__ == "<lambda>":
        return f"{name!r} is a lambda; only functions defined with def are published"
    if value.__module__ != module.__name__:
        return f"{name!r} was imported from {value.__module__}; only the module's own functions are published"
    if value.__name__ != name:
        return f"{name!r} is another name for function {value.__name__!r}"
    return None


class DispatchTable:
    """The WSGI application of one generation of a handler folder: what each URL of
    the folder calls, decided when the table is built and never changed after.

    Routing (``/m.py/f`` is the same as ``/m/f``; one trailing ``/`` is ignored):

    ====================  =========================================================
    ``/``                 ``index(...)`` in ``index.py``
    ``/notes``            ``index(...)`` in ``notes.py``; if there is no
                          ``notes.py``, ``notes(...)`` in ``index.py``
    ``/notes/list``       ``list(...)`` in ``notes.py``
    anything else         404
    ====================  =========================================================
    """

    def __init__(
        self, modules: Mapping[str, ModuleType], *, debug: bool = False, allow_hosts: Iterable[str] = ()
    ) -> None:
        self.debug = debug
        # In debug mode, who may read the reasons and tracebacks: the hosts that may see
        # HotReload's debug pages (see _guard.py); any other host gets production answers.
        self._hosts = HostCheck(allow_hosts) if debug else None
        self._modules = {
            name: _PublishedModule(module, published_functions(module, name))
            for name, module in modules.items()
            if PUBLIC_NAME.match(name)
        }

    def __repr__(self) -> str:
        count = sum(len(m.handlers) for m in self._modules.values())
        return f"<DispatchTable {count} handlers in {len(self._modules)} modules>"

    def routes(self) -> dict[str, str]:
        """Each published URL path (the shortest one) → ``"module.function"``."""
        out: dict[str, str] = {}
        for module_name, published in sorted(self._modules.items()):
            for name, handler in sorted(published.handlers.items()):
                if name == "index":
                    path = "/" if module_name == "index" else f"/{module_name}"
                else:
                    path = f"/{module_name}/{name}"
                out[path] = handler.name
        return dict(sorted(out.items()))

    # -- the request path ---------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        response = self.respond(environ)
        return response(environ, start_response)

    def respond(self, environ: Environ) -> Response:
        """The response to one request, every error included; raises only what a
        handler raised that is not an :class:`Exception` (KeyboardInterrupt and the like)."""
        explain = self._hosts is not None and self._hosts.judge(host_of(environ))
        found = self._resolve(environ, explain)
        if isinstance(found, Response):
            return found
        handler = found
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        if method == "OPTIONS" and "OPTIONS" not in handler.methods:
            return Response(b"", 200, headers={"Allow": handler.allow_header})
        if method not in handler.allowed:
            detail = f": {handler.name} accepts {handler.allow_header}" if explain else ""
            return _plain(405, f"Method Not Allowed{detail}", Allow=handler.allow_header)
        request = Request(environ)
        try:
            args, kwargs = handler.arguments(request)
        except _MissingParameter as missing:
            return _plain(400, f"Bad Request: missing parameter {missing.name!r}")
        except HTTPException as exc:  # a body werkzeug refused (too large, malformed)
            return exc.get_response(environ)
        try:
            return _as_response(handler.function(*args, **kwargs), handler)
        except HTTPException as exc:  # abort(403), redirects raised as exceptions
            return exc.get_response(environ)
        except Exception as exc:
            # A request's failure is logged with its traceback, as text: a kept record
            # must not keep the generation's frames (and instances) alive.
            text = traceback.format_exc()
            logger.error("handler %s (%s) raised:\n%s", handler.name, handler.where, text)
            if not explain:
                return _plain(500, "Internal Server Error")
            return _traceback_page(exc, handler, text)

    def _resolve(self, environ: Environ, explain: bool) -> Handler | Response:
        """The handler a request's path names, or the 404 response (saying why when
        ``explain``)."""
        path = environ.get("PATH_INFO") or "/"
        raw = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "").partition("?")[0]
        if _ENCODED_SEPARATOR.search(raw):
            # The server decoded %2F into PATH_INFO's '/', so the two spellings look the
            # same here: the raw URI says which one the client sent.
            return _not_found("an encoded '/', '\\' or NUL is never published" if explain else None)
        if not isinstance(path, str) or not path.startswith("/"):
            return _not_found("the path does not start with '/'" if explain else None)
        parts = path[1:].split("/") if path != "/" else []
        if parts and parts[-1] == "":
            parts.pop()
        if len(parts) > 2:
            return _not_found("a URL names at most a module and a function" if explain else None)
        if not all(parts):
            return _not_found("empty path segment" if explain else None)
        if len(parts) == 2:
            module_name, name = _strip_py(parts[0]), parts[1]
        elif len(parts) == 1 and _strip_py(parts[0]) in self._modules:
            module_name, name = _strip_py(parts[0]), "index"
        elif len(parts) == 1:
            module_name, name = "index", parts[0]
        else:
            module_name, name = "index", "index"
        published = self._modules.get(module_name)
        if published is None:
            if not explain:
                return _not_found(None)
            if PUBLIC_NAME.match(module_name):
                return _not_found(f"there is no handler module {module_name}.py")
            return _not_found("only modules named by ASCII identifiers not starting with '_' are published")
        handler = published.handlers.get(name)
        if handler is None:
            if not explain:
                return _not_found(None)
            why = _unpublished_because(published.module, name)
            return _not_found(f"{module_name}.{name} is not published: {why}")
        return handler


def _not_found(reason: str | None) -> Response:
    """404, with the reason only when the request may be told (debug mode, allowed host)."""
    return _plain(404, "Not Found" if reason is None else f"Not Found: {reason}")


def _strip_py(segment: str) -> str:
    return segment[:-3] if segment.endswith(".py") else segment


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(
        text + "\n", status, headers=[*PROTECTIVE_HEADERS, *headers.items()], mimetype="text/plain"
    )


def _as_response(result: object, handler: Handler) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return Response(result, mimetype="text/html")
    if isinstance(result, (bytes, bytearray)):
        return Response(bytes(result), mimetype="text/html")
    if isinstance(result, (dict, list)):
        return Response(json.dumps(result) + "\n", mimetype="application/json")
    raise TypeError(
        f"handler {handler.name} ({handler.where}) returned {type(result).__name__}: return a"
        " werkzeug Response, a str or bytes (HTML), or a dict or list (JSON)"
    )


def _traceback_page(exc: Exception, handler: Handler, text: str) -> Response:
    """The debug page of a handler's exception: everything in it HTML-escaped, served
    with a policy that runs nothing (no script, no style, no frame)."""
    esc = html.escape
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{esc(type(exc).__name__)} in {esc(handler.name)} · hotmod</title></head>
<body>
<h1>{esc(type(exc).__name__)}: {esc(str(exc))}</h1>
<p>raised by handler <strong>{esc(handler.name)}</strong> ({esc(handler.where)}).
This page appears in debug mode only.</p>
<pre>{esc(text)}</pre>
</body>
</html>
"""
    headers = [*PROTECTIVE_HEADERS, ("Content-Security-Policy", NOTHING_POLICY)]
    return Response(page, 500, headers=headers, mimetype="text/html")


# -- the Publisher ------------------------------------------------------------------------


class _TableFinder(importlib.abc.MetaPathFinder):
    """Finds the table module by its unique package name, and nothing else."""

    def __init__(self, package: str, init_file: str) -> None:
        self.package = package
        self.init_file = init_file

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.package:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.init_file, submodule_search_locations=[os.path.dirname(self.init_file)]
        )


class Publisher:
    """Serve the handler modules of ``directory`` by URL, mod_python.publisher style,
    reloading each one through hotmod's generations when it changes.

    ``/notes/list`` calls ``list(...)`` in ``directory/notes.py``, ``/notes`` calls
    its ``index(...)``, ``/`` calls ``index(...)`` in ``directory/index.py``. A
    parameter named ``request`` (or ``req``) gets the :class:`werkzeug.Request`;
    other named parameters get the form or query field of that name (400 when a
    required one is missing). A handler returns a werkzeug ``Response``, a ``str`` or
    ``bytes`` (HTML), or a ``dict`` or ``list`` (JSON). It accepts GET, HEAD and POST
    unless its ``methods`` attribute says otherwise (``f.methods = ("POST",)``); other
    methods get 405, and OPTIONS is answered with the ``Allow`` header.

    Only the module's own functions whose names do not start with ``_`` (and, where
    the module defines ``__all__``, only those it lists) are reachable; anything
    else is 404. See docs/publisher.md.

    Every ``.py`` file directly in ``directory`` (not starting with ``_``) is
    imported when the Publisher starts: a failing one raises
    :class:`hotmod.ReloadError` here, never on the first request. A new file makes
    its URLs live, a deleted one makes them 404, an edited one is reloaded together
    with the modules of the folder that import it; each request runs on the
    generation that was current when it began (the Publisher is a
    :class:`HotReload` of a generated table module, see docs/publisher.md).

    :param debug: 404 and 405 bodies say why, a handler's exception is shown as an
        HTML-escaped traceback, and :class:`HotReload`'s debug features apply (error
        page while the latest edit failed, ``/__hotmod__``, the generation header),
        all for requests whose ``Host`` is ``localhost``, ``127.0.0.1``, ``[::1]`` or
        in ``allow_hosts`` only; other hosts get the production answers. Off by
        default: short plain messages, tracebacks only in the log.
    :param allow_hosts: more host names that may see the debug details (as for
        :class:`HotReload`).
    :param poll: use the polling watcher instead of inotify.
    :param drain_timeout: seconds a superseded generation may keep requests in flight
        before it is retired anyway.
    :param drain_warning: seconds after which a generation still draining is logged.
    :param log: make the ``hotmod`` logger's lines visible on stderr (see
        :func:`log_reloads`).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        debug: bool = False,
        allow_hosts: Iterable[str] = (),
        poll: bool = False,
        drain_timeout: float | None = None,
        drain_warning: float = 60.0,
        log: bool = False,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise ValueError(f"directory must be a path to a folder, got {directory!r}")
        if isinstance(allow_hosts, str):
            raise ValueError("allow_hosts takes a list of host names, not a single string")
        hosts = HostCheck(allow_hosts).allowed  # validated here, written into the table module
        real = os.path.realpath(directory)
        if not os.path.isdir(real):
            raise ValueError(f"handler directory {os.fspath(directory)!r} is not a folder")
        self.directory = Path(real)
        self.debug = bool(debug)
        self.package = f"_hotmod_publisher_{next(_packages)}"
        self._closed = False  # owner: close()
        self._creator_pid = os.getpid()  # only the creating process removes the table folder
        self._table_dir = tempfile.mkdtemp(prefix="hotmod-publisher-")
        self._table_file = os.path.join(self._table_dir, "__init__.py")
        with open(self._table_file, "w", encoding="utf-8") as f:
            f.write(_TABLE_MODULE.format(
                directory=real, debug=self.debug, allow_hosts=hosts, attribute=TABLE_ATTRIBUTE
            ))
        self._finder = _TableFinder(self.package, self._table_file)
        sys.meta_path.append(self._finder)
        try:
            self._app = HotReload(
                f"{self.package}:{TABLE_ATTRIBUTE}",
                watch=[self._table_dir, real],
                # A .py file the engine does not know yet (a new handler) reloads the
                # target's module, the table module, which lists the folder again.
                extra=("*.py",),
                debug=self.debug,
                allow_hosts=hosts,
                poll=poll,
                drain_timeout=drain_timeout,
                drain_warning=drain_warning,
                log=log,
            )
        except BaseException:
            self._remove_table()
            raise
        atexit.register(self.close)
        logger.info("publishing %d handler module(s) of %s", len(self._table()._modules), real)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return self._app(environ, start_response)

    def _table(self) -> DispatchTable:
        table = self._app.reloader.current.target
        assert isinstance(table, DispatchTable)
        return table

    @property
    def reloader(self) -> Reloader:
        """The engine underneath (a :class:`reloader.Reloader`), for advanced use."""
        return self._app.reloader

    @property
    def generation(self) -> int:
        """The current generation's number."""
        return self._app.generation

    def routes(self) -> dict[str, str]:
        """The current generation's published URL paths → ``"module.function"``."""
        return self._table().routes()

    def reload(self) -> int:
        """Reload what changed now, synchronously, new and deleted files included;
        return the current generation's number. Raises :class:`hotmod.ReloadError`
        when the plan failed (the last good generation keeps serving)."""
        number = self._app.reload()
        if set(handler_modules(self.directory)) != set(self._table()._modules):
            number = self._app.reloader.reload([self._table_file])
        return number

    def close(self) -> None:
        """Stop watching, run the handler modules' purge hooks, remove the table
        module. Twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            atexit.unregister(self.close)
            self._app.close()
        finally:
            self._remove_table()

    def _remove_table(self) -> None:
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        if os.getpid() != self._creator_pid:
            return  # a forked worker: its parent and siblings still load from it
        try:
            shutil.rmtree(self._table_dir)
        except OSError:
            logger.warning("could not remove the table module folder %s", self._table_dir, exc_info=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("frozen" if self._app.frozen else "watching")
        return f"<Publisher {str(self.directory)!r} generation={self.generation} {state}>"
