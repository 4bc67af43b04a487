"""Lifespans started and stopped in this process, kept across reloads.

Each generation's app runs its own lifespan under hotmod; a superseded one must shut
down once it drained. ``running()`` is the number started and not yet stopped: flat
at one (plus generations still draining) over a soak, or a lifespan leaked.
"""

from __future__ import annotations

from typing import Any

# Handed to the new instance should this module be reloaded (``__mp_clone__``).
counts: dict[str, int] = globals().get("counts") or {"started": 0, "stopped": 0}


def started() -> None:
    counts["started"] += 1


def stopped() -> None:
    counts["stopped"] += 1


def running() -> int:
    return counts["started"] - counts["stopped"]


def __mp_clone__(new: Any) -> None:
    new.__dict__["counts"] = counts
