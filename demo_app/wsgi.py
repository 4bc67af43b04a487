"""The WSGI entry point of the demo: ``hotmod serve demo_app.wsgi:app``.

``routes`` is a plain WSGI callable that routes with :data:`demo_app.views.url_map`.
Because this module imports the views, every reload of the views (or of
:mod:`demo_app.db`, which the views import) re-executes it too, so the
generation's ``app`` always dispatches to the views of its own generation.

``app`` also mounts ``demo_app/handlers/`` at ``/legacy``, served by hotmod's
:class:`~hotmod.Publisher` the way mod_python.publisher served a folder of
modules (see docs/publisher.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request

from demo_app import views
from hotmod import Publisher

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The handler folder served at /legacy: one URL per public function of each module.
HANDLERS = Path(__file__).resolve().parent / "handlers"

# The Publisher runs an engine and a watcher of its own, so there is one per process,
# not one per instance of this module. The first /legacy request makes it (importing
# this module starts no thread), and ``__mp_clone__`` hands its holder to each new
# instance of this module, as db.py hands over its pool. Library objects only: a
# carried object of a class defined here would keep the old instance alive.
if "legacy" not in globals():
    legacy: dict[str, Publisher] = {}
    legacy_lock = threading.Lock()


def __mp_clone__(module: ModuleType) -> None:
    """Hand this process's Publisher (made or not yet) to the new instance."""
    vars(module).update(legacy=legacy, legacy_lock=legacy_lock)


def __mp_purge__() -> None:
    # Nothing took the Publisher over (shutdown, or a failed clone): stop it.
    publisher = legacy.pop("publisher", None)
    if publisher is not None:
        publisher.close()


def legacy_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    publisher = legacy.get("publisher")
    if publisher is None:
        with legacy_lock:
            publisher = legacy.get("publisher")
            if publisher is None:
                publisher = legacy["publisher"] = Publisher(HANDLERS)
    return publisher(environ, start_response)


def routes(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    request = Request(environ)
    adapter = views.url_map.bind_to_environ(environ)
    try:
        endpoint, arguments = adapter.match()
        response = views.endpoints[endpoint](request, **arguments)
    except HTTPException as exc:
        response = views.error_response(request, exc)
    return response(environ, start_response)


# DispatcherMiddleware moves "/legacy" from PATH_INFO to SCRIPT_NAME, so a handler's
# request.script_root is "/legacy" and its request.path is relative to the folder.
app = DispatcherMiddleware(routes, {"/legacy": legacy_app})
