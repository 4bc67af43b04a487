"""Watcher benchmark: save-to-new-generation latency, and what a 5,000-module tree costs.

``python -m bench.watch_latency [--quick | --smoke]`` prints a Markdown table; the
suite calls ``main(quick) -> dict`` or ``run(mode) -> dict`` (the table is under the
``"markdown"`` key, and ``render(result)`` draws it again from a saved result).

Measured in this process, with the real engine (``Reloader.watch()``) and real files:

- **one-module edit**: a small app (``db`` ← ``views`` ← ``wsgi``); ``db.py`` is
  saved (open, write, close) N times; the latency runs from just before the write to
  the engine's ``reloaded`` event, so it includes the watcher's debounce and the
  reload itself (whose own share, ``reload ms``, is reported by the engine).
- **burst**: the same kind of app with a package of ``burst_files`` modules, all
  rewritten in a tight loop (a ``git checkout``, a formatter); the latency runs from
  the end of the last write to the ``reloaded`` event that completes the burst, and
  the number of generations one burst made is counted (one batch: one generation).
- **5,000-module tree**: 10 packages x 10 sub-packages x 50 modules, plus a
  ``node_modules`` and a virtualenv inside the root that must cost nothing. Start-up
  of the watch (``Reloader.watch()``), idle CPU of the whole process over a window,
  and the latency of a leaf edit, which must not grow with the tree.

Nothing here is a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotmod.reloader import Reloader, ReloadEvent

BACKENDS = ("inotify", "watchdog", "polling")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-int(q * len(ordered)) // 100)))
    return ordered[rank - 1]


def _summary(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(_percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def _log(message: str) -> None:
    print(f"[watch_latency {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        shutil.rmtree(folder, ignore_errors=True)


class _Generations:
    """Records the engine's ``reloaded`` events and lets the bench wait for one."""

    def __init__(self, reloader: Reloader) -> None:
        self._cond = threading.Condition()
        self.events: list[tuple[float, ReloadEvent]] = []
        reloader.subscribe(self._on_event)

    def _on_event(self, event: ReloadEvent) -> None:
        if event.kind == "reloaded":
            with self._cond:
                self.events.append((time.perf_counter(), event))
                self._cond.notify_all()

    def wait_for(self, generation: int, timeout: float = 15.0) -> tuple[float, ReloadEvent]:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: any(e.generation >= generation for _, e in self.events), timeout
            )
            if not ok:
                raise RuntimeError(f"generation {generation} did not come within {timeout}s")
            return next((t, e) for t, e in self.events if e.generation >= generation)


def _measure_saves(
    reloader: Reloader, generations: _Generations, path: Path, saves: int, *, name: str
) -> dict[str, Any]:
    latencies: list[float] = []
    reload_ms: list[float] = []
    extra = 0
    # Saves land at random moments of the polling cycle, as an editor's would; a fixed
    # pause would lock them to one phase of it.
    jitter = random.Random(1234)
    for i in range(saves):
        expected = reloader.current.number + 1
        text = f"VALUE = {i + 1}\nLABEL = {name!r}\n"
        started = time.perf_counter()
        with open(path, "w") as stream:
            stream.write(text)
        stamp, event = generations.wait_for(expected)
        latencies.append(stamp - started)
        reload_ms.append(event.duration_ms / 1000)
        time.sleep(0.1 + jitter.uniform(0, 0.5))  # keep the saves apart: one burst each
        extra += reloader.current.number - expected
    return {
        "latency": _summary(latencies),
        "reload": _summary(reload_ms),
        # What the watcher adds: from the write to the start of the reload, roughly.
        "watcher": _summary([t - r for t, r in zip(latencies, reload_ms, strict=True)]),
        "extra_generations": extra,
    }


# --- one-module edit ----------------------------------------------------------------------


def _small_app(root: Path, package: str) -> Path:
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "db.py").write_text("VALUE = 0\nLABEL = 'start'\n")
    (pkg / "views.py").write_text("from .db import VALUE\n\ndef render():\n    return VALUE\n")
    (pkg / "wsgi.py").write_text(
        "from . import views\n\ndef app(environ, start_response):\n    return [b'']\n"
    )
    return pkg / "db.py"


def one_module_edit(backend: str, saves: int) -> dict[str, Any]:
    with _scratch("hotmod-bench-small-") as root:
        package = f"wl_small_{backend}_{os.getpid()}"
        db = _small_app(root, package)
        reloader = Reloader(f"{package}.wsgi:app", roots=[root])
        try:
            reloader.load()
            generations = _Generations(reloader)
            reloader.watch(backend=backend)
            result = _measure_saves(reloader, generations, db, saves, name="small")
            result["backend"] = reloader.watcher.backend
            return result
        finally:
            reloader.close()


# --- a burst over many files ----------------------------------------------------------------


def _burst_app(root: Path, package: str, files: int) -> list[Path]:
    pkg = root / package
    (pkg / "many").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    names = [f"b{i}" for i in range(files)]
    (pkg / "many" / "__init__.py").write_text("".join(f"from . import {n}\n" for n in names))
    for n in names:
        (pkg / "many" / f"{n}.py").write_text("VALUE = 0\n")
    (pkg / "wsgi.py").write_text(
        f"from {package} import many\n\ndef app(environ, start_response):\n    return [b'']\n"
    )
    return [pkg / "many" / f"{n}.py" for n in names]


def burst_edit(backend: str, bursts: int, files: int) -> dict[str, Any]:
    """``bursts`` times: rewrite ``files`` modules back to back, wait for the reload
    that covers them all, count the generations the burst made."""
    with _scratch("hotmod-bench-burst-") as root:
        package = f"wl_burst_{backend}_{os.getpid()}"
        paths = _burst_app(root, package, files)
        names = {f"{package}.many.{p.stem}" for p in paths}
        reloader = Reloader(f"{package}.wsgi:app", roots=[root])
        latencies: list[float] = []
        generations_per_burst: list[int] = []
        try:
            reloader.load()
            generations = _Generations(reloader)
            reloader.watch(backend=backend)
            for i in range(bursts):
                first = reloader.current.number + 1
                seen = len(generations.events)
                for path in paths:
                    with open(path, "w") as stream:
                        stream.write(f"VALUE = {i + 1}\n")
                ended = time.perf_counter()
                covered: set[str] = set()
                number = first
                while not names <= covered:
                    stamp, event = generations.wait_for(number)
                    covered.update(event.modules)
                    number = event.generation + 1
                latencies.append(stamp - ended)
                time.sleep(0.5)  # late batches of this burst would show up here
                generations_per_burst.append(len(generations.events) - seen)
            return {
                "backend": reloader.watcher.backend,
                "files": files,
                "latency": _summary(latencies),
                "generations": generations_per_burst,
            }
        finally:
            reloader.close()


# --- the 5,000-module tree ----------------------------------------------------------------


def _big_tree(root: Path, package: str, *, top: int, sub: int, leaves: int) -> Path:
    """``top`` x ``sub`` x ``leaves`` modules, each package importing its children."""
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("".join(f"from . import p{i}\n" for i in range(top)))
    for i in range(top):
        p = pkg / f"p{i}"
        p.mkdir()
        (p / "__init__.py").write_text("".join(f"from . import s{j}\n" for j in range(sub)))
        for j in range(sub):
            s = p / f"s{j}"
            s.mkdir()
            (s / "__init__.py").write_text("".join(f"from . import m{k}\n" for k in range(leaves)))
            for k in range(leaves):
                (s / f"m{k}.py").write_text(f"VALUE = {k}\n\ndef f():\n    return VALUE\n")
    (pkg / "wsgi.py").write_text(
        f"import {package}\n\ndef app(environ, start_response):\n    return [b'']\n"
    )
    # Folders a root often holds and the watcher must not pay for.
    for n in range(100):
        nm = root / "node_modules" / f"dep{n}"
        nm.mkdir(parents=True)
        (nm / "index.js").write_text("module.exports = 1\n")
    venv = root / ".venv-bench"
    (venv / "lib" / "site-packages" / "dep").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return pkg / f"p{top - 1}" / f"s{sub - 1}" / f"m{leaves - 1}.py"


def big_tree(
    backend: str, *, idle: float, saves: int, shape: tuple[int, int, int] = (10, 10, 50)
) -> dict[str, Any]:
    with _scratch("hotmod-bench-tree-") as root:
        package = f"wl_tree_{backend}_{os.getpid()}"
        top, sub, leaves = shape
        leaf = _big_tree(root, package, top=top, sub=sub, leaves=leaves)
        modules = top * sub * leaves
        reloader = Reloader(f"{package}.wsgi:app", roots=[root])
        try:
            started = time.perf_counter()
            reloader.load()
            load_s = time.perf_counter() - started
            generations = _Generations(reloader)
            threads_before = threading.active_count()
            started = time.perf_counter()
            reloader.watch(backend=backend)
            startup_s = time.perf_counter() - started
            stats = reloader.watcher.stats()
            threads = threading.active_count() - threads_before

            cpu = time.process_time()
            wall = time.perf_counter()
            time.sleep(idle)
            idle_cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)

            edits = _measure_saves(reloader, generations, leaf, saves, name="leaf")
            return {
                "backend": reloader.watcher.backend,
                "modules": modules,
                "engine_load_s": round(load_s, 3),
                "watch_startup_ms": round(startup_s * 1000, 1),
                "folders_watched": stats["folders"],
                "watcher_threads": threads,
                "idle_seconds": idle,
                "idle_cpu_percent": round(idle_cpu * 100, 3),
                "leaf_edit": edits,
            }
        finally:
            reloader.close()


# --- report -------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(result: dict[str, Any]) -> str:
    lines = [
        "### Save to new generation, one-module edit",
        "",
        "| backend | saves | median ms | p95 ms | max ms | of which reload, median ms |"
        " of which watcher, median ms | extra generations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in result["one_module"].items():
        lat, rel, wat = row["latency"], row["reload"], row["watcher"]
        lines.append(
            f"| {backend} | {lat['n']} | {_ms(lat['median_ms'])} | {_ms(lat['p95_ms'])} |"
            f" {_ms(lat['max_ms'])} | {_ms(rel['median_ms'])} | {_ms(wat['median_ms'])} |"
            f" {row['extra_generations']} |"
        )
    if result.get("burst"):
        files = next(iter(result["burst"].values()))["files"]
        lines += [
            "",
            f"### A burst: {files} modules rewritten back to back",
            "",
            "| backend | bursts | last write to reload, median ms | p95 ms | max ms |"
            " generations per burst |",
            "|---|---|---|---|---|---|",
        ]
        for backend, row in result["burst"].items():
            lat = row["latency"]
            lines.append(
                f"| {backend} | {lat['n']} | {_ms(lat['median_ms'])} | {_ms(lat['p95_ms'])} |"
                f" {_ms(lat['max_ms'])} | {', '.join(map(str, row['generations']))} |"
            )
    lines += [
        "",
        f"### {result['tree_modules']:,}-module tree",
        "",
        "| backend | folders watched | watcher threads | watch start-up ms | idle CPU % (s) |"
        " leaf edit median ms | leaf edit p95 ms | of which reload, median ms |"
        " of which watcher, median ms (one-module: same) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in result["tree"].items():
        leaf = row["leaf_edit"]["latency"]
        small = result["one_module"].get(backend, {}).get("watcher", {}).get("median_ms")
        watcher = row["leaf_edit"]["watcher"]["median_ms"]
        reload_ms = row["leaf_edit"]["reload"]["median_ms"]
        lines.append(
            f"| {backend} | {row['folders_watched']} | {row['watcher_threads']} |"
            f" {row['watch_startup_ms']:.1f} |"
            f" {row['idle_cpu_percent']:.2f} ({row['idle_seconds']:.0f}) |"
            f" {_ms(leaf['median_ms'])} | {_ms(leaf['p95_ms'])} | {_ms(reload_ms)} |"
            f" {_ms(watcher)} ({_ms(small)}) |"
        )
    lines += [
        "",
        f"Polling interval {result['poll_interval_s']} s (default). The tree: "
        f"{result['tree_shape']}; its engine load took "
        + ", ".join(f"{b} {r['engine_load_s']:.1f} s" for b, r in result["tree"].items())
        + f". Command: `{result['command']}`.",
    ]
    if "load_average_before" in result:
        before = " ".join(map(str, result["load_average_before"]))
        after = " ".join(map(str, result["load_average_after"]))
        lines += ["", f"Load average {before} before, {after} after ({os.cpu_count()} CPUs)."]
    return "\n".join(lines) + "\n"


#: mode -> (saves of the one-module edit, leaf saves in the tree, idle seconds, tree shape,
#: bursts)
MODES: dict[str, tuple[int, int, float, tuple[int, int, int], int]] = {
    "smoke": (3, 2, 1.0, (5, 5, 20), 2),
    "quick": (15, 8, 5.0, (10, 10, 50), 5),
    "full": (50, 20, 30.0, (10, 10, 50), 15),
}

#: Modules rewritten by one burst.
BURST_FILES = 50


def run(mode: str = "full") -> dict[str, Any]:
    """One run in ``mode`` (``smoke``: seconds, a 500-module tree; ``quick``; ``full``)."""
    saves, tree_saves, idle, shape, bursts = MODES[mode]
    top, sub, leaves = shape
    result: dict[str, Any] = {
        "mode": mode,
        "quick": mode != "full",
        "command": ".venv/bin/python -m bench.watch_latency"
        + {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode],
        "poll_interval_s": 0.5,
        "tree_modules": top * sub * leaves,
        "tree_shape": f"{top} packages x {sub} sub-packages x {leaves} modules, plus"
        " node_modules (100 folders) and a virtualenv inside the root",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "one_module": {},
        "burst": {},
        "tree": {},
    }
    for backend in BACKENDS:
        _log(f"one-module edit, {backend}, {saves} saves")
        result["one_module"][backend] = one_module_edit(backend, saves)
    for backend in BACKENDS:
        _log(f"burst of {BURST_FILES} files, {backend}, {bursts} bursts")
        result["burst"][backend] = burst_edit(backend, bursts, BURST_FILES)
    for backend in BACKENDS:
        _log(f"{top * sub * leaves}-module tree, {backend}: idle {idle:.0f} s, {tree_saves} saves")
        result["tree"][backend] = big_tree(backend, idle=idle, saves=tree_saves, shape=shape)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["markdown"] = render(result)
    return result


def main(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; returns a plain dict (with the table under ``markdown``)."""
    return run("quick" if quick else "full")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.watch_latency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer saves, a 5 s idle window")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: each step once")
    args = parser.parse_args()
    print(run("smoke" if args.smoke else "quick" if args.quick else "full")["markdown"])
