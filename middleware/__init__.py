"""WSGI side of hotmod: :class:`HotReload` and the ``hotmod serve`` dev server.

``HotReload`` wraps any WSGI application named by ``"pkg.module:attr"`` and serves
each request from the generation of its code that was current when the request
began. See ``docs/middleware.md`` and ``docs/cli.md``.
"""

from __future__ import annotations

from ._app import GENERATION_HEADER, GENERATION_KEY, HotReload, log_reloads
from ._status import STATUS_PATH

__all__ = ["GENERATION_HEADER", "GENERATION_KEY", "STATUS_PATH", "HotReload", "log_reloads"]
