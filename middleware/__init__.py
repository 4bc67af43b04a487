"""WSGI side of hotmod: :class:`HotReload` and the ``hotmod serve`` dev server.

``HotReload`` wraps any WSGI application named by ``"pkg.module:attr"`` and serves
each request from the generation of its code that was current when the request
began. :class:`Publisher` serves a folder of handler modules by URL, as
mod_python.publisher did, through the same generations. See ``docs/middleware.md``,
``docs/publisher.md`` and ``docs/cli.md``.
"""

from __future__ import annotations

from ._app import GENERATION_HEADER, GENERATION_KEY, HotReload, log_reloads
from ._publisher import Publisher
from ._status import STATUS_PATH

__all__ = ["GENERATION_HEADER", "GENERATION_KEY", "STATUS_PATH", "HotReload", "Publisher", "log_reloads"]
