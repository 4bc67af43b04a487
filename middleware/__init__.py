"""WSGI side of hotmod: :class:`HotReload` and the ``hotmod serve`` dev server.

``HotReload`` wraps any WSGI application named by ``"pkg.module:attr"`` and serves
each request from the generation of its code that was current when the request
began. :class:`Publisher` serves a folder of handler modules by URL, as
mod_python.publisher did, through the same generations. See ``docs/middleware.md``,
``docs/publisher.md`` and ``docs/cli.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._app import GENERATION_HEADER, GENERATION_KEY, HotReload, log_reloads
from ._status import STATUS_PATH

if TYPE_CHECKING:
    from ._publisher import Publisher

__all__ = ["GENERATION_HEADER", "GENERATION_KEY", "STATUS_PATH", "HotReload", "Publisher", "log_reloads"]


def __getattr__(name: str) -> Any:
    # Publisher pulls in werkzeug's request and response: imported on first use only,
    # so that ``import hotmod`` (the pytest plugin, the engine alone) stays light.
    if name == "Publisher":
        from ._publisher import Publisher

        globals()["Publisher"] = Publisher
        return Publisher
    raise AttributeError(f"module 'hotmod.middleware' has no attribute {name!r}")
