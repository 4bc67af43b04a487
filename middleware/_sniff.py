"""Which protocol a target speaks: ASGI or WSGI, told from the object itself."""

from __future__ import annotations

import inspect
from typing import Any


def is_asgi(app: Any) -> bool:
    """Whether ``app`` is an ASGI 3 application: a coroutine function, or an object whose
    ``__call__`` is one (how uvicorn and hypercorn tell too), or a callable of three
    positional parameters (``scope, receive, send``; a WSGI app takes two)."""
    if inspect.isclass(app):
        return False
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(type(app), "__call__", None)  # noqa: B004 (the method, not callable())
    if call is not None and inspect.iscoroutinefunction(call):
        return True
    try:
        params = [
            p for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 3
