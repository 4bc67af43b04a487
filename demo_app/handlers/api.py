"""``/legacy/api/status``: a handler that returns a dict is served as JSON."""

from __future__ import annotations

import os
import time

from werkzeug.wrappers import Request

# When this instance of the module ran: an edit makes a new one.
loaded_at = time.time()


def status(request: Request) -> dict[str, object]:
    return {
        "handler": "api.status",
        "generation": request.environ.get("hotmod.generation"),
        "pid": os.getpid(),
        "loaded_at": loaded_at,
    }


# Accepted methods (the default is GET, HEAD and POST): HEAD and OPTIONS follow GET,
# anything else gets 405.
status.methods = ("GET",)  # type: ignore[attr-defined]
