"""The WSGI entry point of the demo: ``hotmod serve demo_app.wsgi:app``.

``app`` is a plain WSGI callable that routes with :data:`demo_app.views.url_map`.
Because this module imports the views, every reload of the views (or of
:mod:`demo_app.db`, which the views import) re-executes it too, so the
generation's ``app`` always dispatches to the views of its own generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from demo_app import views

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    request = Request(environ)
    adapter = views.url_map.bind_to_environ(environ)
    try:
        endpoint, arguments = adapter.match()
        response = views.endpoints[endpoint](request, **arguments)
    except HTTPException as exc:
        response = views.error_response(request, exc)
    return response(environ, start_response)
