"""The engine's own milliseconds per plan: ``reload()`` minus the app's own code.

The tree of :mod:`bench.leaf_reload` (packages of 100 modules, a hub per package,
the target importing every hub): editing one leaf reloads the leaf, its hub and the
target, 3 modules whatever the tree's size. Each reload is timed around
``Reloader.reload()`` (explicit path, no watcher, no server); the ``reloaded``
event's ``exec_ms`` says how long the app's own code ran inside it (module bodies
with their parse and compile, clone hooks, the target's factory). The difference
is the engine's own work: planning, reading and hashing, import bookkeeping, the
swap, events. Goal (issue 15): at most 1 ms, flat from 100 to 5,000 modules.

Run: ``python -m bench.engine_share [--quick] [--profile SIZE]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.leaf_reload import _tree
from hotmod.reloader import Reloader, ReloadEvent


def measure(size: int, reloads: int, *, profile: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotmod-share-") as tmp:
        name = f"sharebench{size}"
        leaf = _tree(Path(tmp), name, size)
        sys.path.insert(0, tmp)
        engine = Reloader(f"{name}.wsgi:app", leak_check_delay=3600)
        events: list[ReloadEvent] = []
        engine.subscribe(events.append)
        profiler = cProfile.Profile() if profile else None
        try:
            engine.load()
            total: list[float] = []
            app: list[float] = []
            for i in range(reloads):
                leaf.write_text(f"X = {i}\n\ndef f():\n    return X\n")
                events.clear()
                if profiler is not None:
                    profiler.enable()
                started = time.perf_counter()
                engine.reload([leaf])
                total.append((time.perf_counter() - started) * 1000)
                if profiler is not None:
                    profiler.disable()
                app.append(next(e.exec_ms for e in events if e.kind == "reloaded"))
            modules = engine.stats()["history"][-1]["modules"]
        finally:
            engine.close()
            sys.path.remove(tmp)
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
    own = sorted(t - a for t, a in zip(total, app, strict=True))
    row = {
        "modules": size,
        "reload_median_ms": round(statistics.median(total), 3),
        "app_median_ms": round(statistics.median(app), 3),
        "own_median_ms": round(statistics.median(own), 3),
        "own_p95_ms": round(own[max(0, int(len(own) * 0.95) - 1)], 3),
        "reloaded": len(modules),
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        row["profile"] = text.getvalue()
    return row


def main(quick: bool) -> dict[str, Any]:
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    return {"rows": [measure(size, 30 if quick else 100) for size in sizes]}


def render(result: dict[str, Any]) -> str:
    lines = [
        "| modules in tree | reload() median ms | app's code median ms | engine's own median ms"
        " | own p95 ms | modules reloaded |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = (r["modules"], r["reload_median_ms"], r["app_median_ms"], r["own_median_ms"],
                 r["own_p95_ms"], r["reloaded"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", type=int, metavar="SIZE",
                        help="profile the reloads of a tree of SIZE modules instead")
    args = parser.parse_args()
    if args.profile:
        print(measure(args.profile, 100, profile=True)["profile"])
    else:
        print(render(main(args.quick)), end="")
