"""Engine-only reload cost: one leaf module, median of 100 reloads, and flatness.

A tree of N modules in packages of 100: each package has a hub importing its 99
leaves, the target imports every hub. Editing one leaf reloads the leaf, its hub
and the target (3 modules), whatever N is. Timed around ``Reloader.reload()``
(explicit path, no watcher, no server), so it is the engine's own cost.

Run: ``python -m bench.leaf_reload [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hotmod.reloader import Reloader


def _tree(root: Path, name: str, size: int) -> Path:
    top = root / name
    top.mkdir()
    (top / "__init__.py").write_text("")
    for p in range(max(1, size // 100)):
        pkg = top / f"p{p}"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for m in range(99):
            (pkg / f"m{m}.py").write_text(f"X = {m}\n\ndef f():\n    return X\n")
        (pkg / "hub.py").write_text("".join(f"from . import m{m}\n" for m in range(99)))
    hubs = "".join(f"from {name}.p{p} import hub as h{p}\n" for p in range(max(1, size // 100)))
    (top / "wsgi.py").write_text(hubs + "app = lambda environ, start_response: []\n")
    return top / "p0" / "m1.py"


def measure(size: int, reloads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotmod-leaf-") as tmp:
        name = f"leafbench{size}"
        leaf = _tree(Path(tmp), name, size)
        sys.path.insert(0, tmp)
        engine = Reloader(f"{name}.wsgi:app", leak_check_delay=3600)
        try:
            started = time.perf_counter()
            engine.load()
            load_ms = (time.perf_counter() - started) * 1000
            times = []
            for i in range(reloads):
                leaf.write_text(f"X = {i}\n\ndef f():\n    return X\n")
                started = time.perf_counter()
                engine.reload([leaf])
                times.append((time.perf_counter() - started) * 1000)
            modules = engine.stats()["history"][-1]["modules"]
        finally:
            engine.close()
            sys.path.remove(tmp)
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
    times.sort()
    return {
        "modules": size,
        "load_ms": round(load_ms, 1),
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "reloaded": len(modules),
    }


def main(quick: bool) -> dict[str, Any]:
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    rows = [measure(size, 30 if quick and size > 100 else 100) for size in sizes]
    return {"rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print("| modules in tree | load ms | leaf reload median ms | p95 ms | modules reloaded |")
    print("|---|---|---|---|---|")
    for row in main(args.quick)["rows"]:
        cells = (row["modules"], row["load_ms"], row["median_ms"], row["p95_ms"], row["reloaded"])
        print("| " + " | ".join(str(c) for c in cells) + " |")
