"""How late the event loop wakes up: a task that sleeps 1 ms in a loop and keeps the
largest overshoot, read at ``GET /admin/loop-lag``.

The bench reads it to see how long a reload holds the event loop. Under hotmod the
measurement must outlive the generations it measures: the reload happens while
generation N serves and N+1 starts, and N's lifespan shuts down later. So the
probe belongs to the process, not to an app object: its state and its task live
in this module, each lifespan only says "I use it" (``start``) and "no longer"
(``stop``), and the task is cancelled when the last user stops. This module is
imported by ``app.main`` but imports nothing that a reload of the views touches,
so a plan for a view leaves it shared; should it be reloaded itself,
``__mp_clone__`` hands the running probe to the new instance.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

INTERVAL_S = 0.001


@dataclass
class LoopLag:
    """Overshoots of a 1 ms sleep since the last reset (the task's loop only touches it)."""

    started_unix: float = field(default_factory=time.time)
    since_unix: float = field(default_factory=time.time)
    samples: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    over_10ms: int = 0
    over_50ms: int = 0
    users: int = 0
    task_starts: int = 0
    task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.since_unix = time.time()
        self.samples = 0
        self.total_s = self.max_s = 0.0
        self.over_10ms = self.over_50ms = 0

    def record(self, overshoot_s: float) -> None:
        self.samples += 1
        self.total_s += overshoot_s
        self.max_s = max(self.max_s, overshoot_s)
        self.over_10ms += overshoot_s > 0.010
        self.over_50ms += overshoot_s > 0.050

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_unix": self.started_unix,
            "since_unix": self.since_unix,
            "samples": self.samples,
            "max_ms": round(self.max_s * 1000, 3),
            "mean_ms": round(self.total_s / self.samples * 1000, 3) if self.samples else None,
            "over_10ms": self.over_10ms,
            "over_50ms": self.over_50ms,
            "running": self.task is not None and not self.task.done(),
            "task_starts": self.task_starts,
        }


async def _measure(lag: LoopLag) -> None:
    # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
    while True:
        before = time.perf_counter()
        await asyncio.sleep(INTERVAL_S)
        lag.record(max(0.0, time.perf_counter() - before - INTERVAL_S))


# The probe a reload of this module finds already running is kept.
probe: LoopLag = globals().get("probe") or LoopLag()


def start() -> None:
    """Called by a lifespan's startup, on the serving loop."""
    probe.users += 1
    if probe.task is None or probe.task.done():
        probe.task = asyncio.get_running_loop().create_task(_measure(probe), name="loop-lag probe")
        probe.task_starts += 1


def stop() -> None:
    """Called by a lifespan's shutdown: the last user's stop ends the task."""
    probe.users -= 1
    if probe.users <= 0 and probe.task is not None:
        probe.task.cancel()
        probe.task = None


def __mp_clone__(new: Any) -> None:
    new.__dict__["probe"] = probe
