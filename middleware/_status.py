"""The ``/__hotmod__`` status document (debug mode only)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

#: The path, inside the application's mount point, that answers with the status.
STATUS_PATH = "/__hotmod__"

_DRAINING_KEYS = ("generation", "in_flight", "since")
_HISTORY_KEYS = ("time", "generation", "modules", "importers", "duration_ms", "exec_ms")
_STALE_KEYS = ("time", "generation", "module", "object", "holder")


def _project(rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{key: row.get(key) for key in keys} for row in rows]


def build_status(
    stats: Mapping[str, Any],
    *,
    frozen: bool,
    graph: Mapping[str, Iterable[str]],
    frameworks: Iterable[str] = (),
) -> dict[str, Any]:
    """Shape the engine's ``stats()`` and ``graph()`` into the documented status keys."""
    return {
        "generation": stats["generation"],
        "frozen": bool(frozen),
        "pending": [str(path) for path in stats.get("pending", ())],
        "draining": _project(stats.get("draining", ()), _DRAINING_KEYS),
        "history": _project(stats.get("history", ()), _HISTORY_KEYS),
        "last_error": stats.get("last_error"),
        "leaked": stats.get("leaked"),
        "leak_checks_pending": stats.get("leak_checks_pending", 0),
        "restart_needed": stats.get("restart_needed"),
        "stale": _project(stats.get("stale", ()), _STALE_KEYS),
        "frameworks": list(frameworks),
        "graph": {name: sorted(imports) for name, imports in sorted(graph.items())},
    }


def status_body(status: Mapping[str, Any]) -> bytes:
    # default=str: a Path or a tuple from the engine must not turn the endpoint into a 500.
    return json.dumps(status, indent=2, default=str).encode("utf-8")
