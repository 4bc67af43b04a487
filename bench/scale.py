"""Scale: trees of 100, 1,000 and 5,000 modules under the engine's public API.

For each size a generated package ``scaletree`` (``p000/m000.py`` ...,
100 modules per sub-package, a ``core`` module imported by up to 200 of them,
and ``scaletree.app:app`` importing everything) is loaded in a fresh worker
process through ``reloader.Reloader``. Measured there:

- load (generation 1) and watcher start-up (``Reloader.watch()``);
- idle CPU over a window, read from /proc by the parent, side by side with a
  second worker that imported the same tree and runs werkzeug's stat reloader
  loop (what ``run_simple(use_reloader=True, reloader_type="stat")`` runs in its
  serving child), both idle at the same time;
- leaf edit: atomic rename of a module only its package imports, time from the
  rename to the ``reloaded`` event, and the engine's own ``duration_ms``;
- deep edit: ``core``, imported by 200 modules: the whole cascade, same timings.

Run alone: ``python -m bench.scale [--quick|--smoke]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench._harness import (
    REPO,
    Pending,
    fmt,
    kill_group,
    log,
    process_cpu_seconds,
    scratch_dir,
    summary_ms,
)

PER_PACKAGE = 100
DEEP_IMPORTERS = 200


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    idle: float  # seconds of idle CPU measurement
    leaf_edits: int
    deep_edits: int
    event_timeout: float

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        return cls(
            sizes=tuple(data["sizes"]),
            idle=float(data["idle"]),
            leaf_edits=int(data["leaf_edits"]),
            deep_edits=int(data["deep_edits"]),
            event_timeout=float(data["event_timeout"]),
        )


SETTINGS = {
    "full": Settings((100, 1_000, 5_000), 30.0, 15, 5, 30.0),
    "quick": Settings((100, 1_000), 3.0, 5, 2, 30.0),
    "smoke": Settings((100,), 1.0, 1, 1, 15.0),
}


# --- the generated tree ----------------------------------------------------------------------


def build_tree(root: Path, size: int) -> dict[str, Any]:
    """Write ``scaletree`` with ``size`` modules under ``root``; returns what to edit."""
    pkg = root / "scaletree"
    pkg.mkdir(parents=True)
    packages = -(-size // PER_PACKAGE)
    deep = min(DEEP_IMPORTERS, size // 2)
    written = 0
    leaf, leaf_n = "", 0
    for p in range(packages):
        sub = pkg / f"p{p:03d}"
        sub.mkdir()
        names = []
        for m in range(min(PER_PACKAGE, size - written)):
            n = written
            imports_core = n < deep
            names.append(f"m{m:03d}")
            (sub / f"m{m:03d}.py").write_text(_module_source(n, imports_core, 0))
            if not imports_core:
                leaf, leaf_n = f"p{p:03d}/m{m:03d}.py", n
            written += 1
        (sub / "__init__.py").write_text(
            "".join(f"from scaletree.p{p:03d} import {name}\n" for name in names)
        )
    (pkg / "__init__.py").write_text("".join(f"from scaletree import p{p:03d}\n" for p in range(packages)))
    (pkg / "core.py").write_text(_core_source(0))
    (pkg / "app.py").write_text(
        "import scaletree\nfrom scaletree import core\n\n\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [core.VERSION.encode()]\n"
    )
    # The leaf is the last module that does not import core (only its package does).
    return {
        "leaf": f"scaletree/{leaf}",
        "leaf_n": leaf_n,
        "core": "scaletree/core.py",
        "deep_importers": deep,
        "modules": size,
    }


def _module_source(n: int, imports_core: bool, version: int) -> str:
    head = "from scaletree import core\n" if imports_core else ""
    base = "core.BASE" if imports_core else "1"
    return (
        f'"""Generated module {n}."""\n{head}\nVERSION = {version}\n\n\n'
        f"def compute(x: int) -> int:\n    return x * {base} + {n} + VERSION\n\n\n"
        f"class Thing{n}:\n    def __init__(self, value: int) -> None:\n"
        f"        self.value = compute(value)\n\n    def __repr__(self) -> str:\n"
        f"        return f'Thing{n}({{self.value}})'\n"
    )


def _core_source(version: int) -> str:
    return f'"""Imported by many."""\n\nBASE = 3\nVERSION = "core-{version}"\n'


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- the workers ---------------------------------------------------------------------------


def hotmod_worker(root: Path, spec: dict[str, Any], settings: Settings) -> None:
    """Runs in its own process: load, watch, report ready, idle, then edit on request."""
    sys.path.insert(0, str(root))
    from hotmod.reloader import Reloader, ReloadEvent

    events: queue.Queue[ReloadEvent] = queue.Queue()
    t0 = time.perf_counter()
    engine = Reloader("scaletree.app:app", roots=[str(root)])
    engine.load()
    load_s = time.perf_counter() - t0
    engine.subscribe(events.put)
    threads_before = threading.active_count()
    t0 = time.perf_counter()
    engine.watch()
    watch_s = time.perf_counter() - t0
    _emit(
        {
            "ready": True,
            "load_s": load_s,
            "watch_s": watch_s,
            "modules_loaded": len(engine.files()),
            "threads": threading.active_count(),
            "watcher_threads": threading.active_count() - threads_before,
            "folders_watched": engine.watcher.stats()["folders"],
        }
    )
    sys.stdin.readline()  # the parent measures idle CPU meanwhile
    out: dict[str, Any] = {}
    try:
        for kind, rel, count in (
            ("leaf", spec["leaf"], settings.leaf_edits),
            ("deep", spec["core"], settings.deep_edits),
        ):
            out[kind] = _edits(root / rel, kind, spec["leaf_n"], count, events, settings.event_timeout)
        out["leaf_profile"] = _profile_leaf(engine, root / spec["leaf"], spec["leaf_n"])
    finally:
        engine.close()
    _emit(out)


def _profile_leaf(engine: Any, path: Path, n: int) -> dict[str, Any]:
    """One leaf reload, synchronous and without the watcher, under cProfile."""
    engine.unwatch()
    rewrite(path, _module_source(n, False, 10_000))
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    engine.reload(paths=[str(path)])
    profiler.disable()
    elapsed = time.perf_counter() - t0
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    lines = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    table = [line.replace(str(REPO) + "/", "") for line in lines[start:] if line.strip()]
    return {"ms": elapsed * 1000, "top_tottime": "\n".join(table)}


def _edits(
    path: Path, kind: str, n: int, count: int, events: queue.Queue[Any], timeout: float
) -> dict[str, Any]:
    latencies: list[float] = []
    durations: list[float] = []
    modules: list[int] = []
    misses = 0
    for version in range(1, count + 1):
        while not events.empty():
            events.get_nowait()
        text = _core_source(version) if kind == "deep" else _module_source(n, False, version)
        t0 = time.perf_counter()
        rewrite(path, text)
        deadline = t0 + timeout
        while True:
            try:
                event = events.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                misses += 1
                break
            if event.kind == "reloaded":
                latencies.append(time.perf_counter() - t0)
                durations.append(event.duration_ms / 1000.0)
                modules.append(len(event.modules))
                break
            if event.kind == "failed":
                misses += 1
                break
        time.sleep(0.05)  # let the tree settle so the next edit is its own burst
    return {
        "latency": summary_ms(latencies),
        "engine": summary_ms(durations),
        "modules_reloaded": max(modules) if modules else None,
        "misses": misses,
    }


def werkzeug_worker(root: Path) -> None:
    """Imports the tree, then runs werkzeug's stat reloader loop until killed."""
    # The stat loop walks every sys.path folder: keep it to the tree (and the standard
    # library, which it skips), not the repository that teammates are editing.
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != str(REPO)]
    sys.path.insert(0, str(root))
    import scaletree.app  # noqa: F401 - what the stat loop watches is sys.modules
    from werkzeug._reloader import reloader_loops

    loop = reloader_loops["stat"](interval=1)
    t0 = time.perf_counter()
    loop.__enter__()  # the first scan: it records every file's mtime
    _emit({"ready": True, "watch_s": time.perf_counter() - t0})
    loop.run()


def _emit(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


# --- the parent ------------------------------------------------------------------------------


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("WERKZEUG_RUN_MAIN", None)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.scale", *args],
            cwd=REPO,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )


def _read_json(stream: IO[str] | None, proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON line of a worker, bounded by ``timeout``."""
    assert stream is not None
    result: queue.Queue[str] = queue.Queue()

    def reader() -> None:
        result.put(stream.readline())

    threading.Thread(target=reader, daemon=True).start()
    try:
        line = result.get(timeout=timeout)
    except queue.Empty as exc:
        raise RuntimeError(f"scale worker {proc.pid} gave no answer in {timeout}s") from exc
    if not line:
        raise RuntimeError(f"scale worker {proc.pid} exited with {proc.wait(timeout=5)}")
    data: dict[str, Any] = json.loads(line)
    return data


def measure_size(scratch: Path, size: int, settings: Settings) -> dict[str, Any]:
    root = scratch / f"tree-{size}"
    root.mkdir()
    spec = build_tree(root, size)
    log(f"scale: {size} modules, {spec['deep_importers']} import core")
    args = [
        "--root",
        str(root),
        "--spec",
        json.dumps(spec),
        "--settings",
        json.dumps(settings.__dict__),
    ]
    ours = _spawn(["--worker", "hotmod", *args], scratch / f"hotmod-{size}.log")
    theirs = _spawn(["--worker", "werkzeug", *args], scratch / f"werkzeug-{size}.log")
    try:
        our_ready = _read_json(ours.stdout, ours, 120)
        their_ready = _read_json(theirs.stdout, theirs, 120)
        cpu0 = (process_cpu_seconds(ours.pid), process_cpu_seconds(theirs.pid))
        t0 = time.monotonic()
        time.sleep(settings.idle)  # the measurement itself: both workers idle
        elapsed = time.monotonic() - t0
        cpu1 = (process_cpu_seconds(ours.pid), process_cpu_seconds(theirs.pid))
        for proc, name in ((ours, "hotmod"), (theirs, "werkzeug")):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {name} worker exited during the idle window "
                    f"(status {proc.returncode}); see {name}-{size}.log"
                )
        kill_group(theirs)  # nothing else to learn from it; frees the CPU for the edits
        assert ours.stdin is not None
        ours.stdin.write("go\n")
        ours.stdin.flush()
        edits = _read_json(
            ours.stdout,
            ours,
            60 + settings.event_timeout * (settings.leaf_edits + settings.deep_edits),
        )
    finally:
        kill_group(ours)
        kill_group(theirs)
    return {
        "modules": size,
        "deep_importers": spec["deep_importers"],
        "load_s": our_ready["load_s"],
        "watch_s": our_ready["watch_s"],
        "modules_loaded": our_ready["modules_loaded"],
        "threads": our_ready["threads"],
        "watcher_threads": our_ready["watcher_threads"],
        "folders_watched": our_ready["folders_watched"],
        "werkzeug_first_scan_s": their_ready["watch_s"],
        "idle_window_s": elapsed,
        "idle_cpu_pct": 100.0 * (cpu1[0] - cpu0[0]) / elapsed,
        "werkzeug_idle_cpu_pct": 100.0 * (cpu1[1] - cpu0[1]) / elapsed,
        **edits,
    }


def run(mode: str = "full") -> dict[str, Any]:
    settings = SETTINGS[mode]
    try:
        from hotmod.reloader import Reloader  # noqa: F401
    except ImportError as exc:
        raise Pending(f"the engine (`reloader.Reloader`) is not available yet ({exc})") from exc
    rows = []
    with scratch_dir("scale") as scratch:
        for size in settings.sizes:
            rows.append(measure_size(scratch, size, settings))
            r = rows[-1]
            log(
                f"scale: {size}: load {r['load_s']:.2f}s watch {r['watch_s'] * 1000:.1f}ms "
                f"idle {r['idle_cpu_pct']:.2f}% (werkzeug {r['werkzeug_idle_cpu_pct']:.2f}%) "
                f"leaf {r['leaf']['latency']['median_ms']} ms deep "
                f"{r['deep']['latency']['median_ms']} ms"
            )
    return {"mode": mode, "settings": settings.__dict__, "rows": rows}


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "## Scale",
        "",
        f"Generated trees (100 modules per package, `core` imported by up to "
        f"{DEEP_IMPORTERS}), loaded by `reloader.Reloader` in a fresh process. Idle CPU over "
        f"{s['idle']:.0f} s, measured from /proc side by side with werkzeug's stat reloader loop "
        f"on the same imported tree. Latency: atomic rename to the `reloaded` event "
        f"(median of {s['leaf_edits']} leaf and {s['deep_edits']} deep edits); engine = the "
        f"event's `duration_ms`.",
        "",
        "| modules | load s | watch() ms | folders watched | threads: process (watcher) "
        "| idle CPU % | werkzeug stat idle CPU % (first scan ms) "
        "| leaf edit ms (engine ms) | deep edit: modules reloaded, ms (engine ms) | misses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['modules']} | {fmt(r['load_s'], 2)} | {fmt(r['watch_s'] * 1000)} "
            f"| {r.get('folders_watched', '-')} "
            f"| {r.get('threads', '-')} ({r.get('watcher_threads', '-')}) "
            f"| {fmt(r['idle_cpu_pct'], 2)} | {fmt(r['werkzeug_idle_cpu_pct'], 2)} "
            f"({fmt(r['werkzeug_first_scan_s'] * 1000, 0)}) "
            f"| {fmt(r['leaf']['latency']['median_ms'])} ({fmt(r['leaf']['engine']['median_ms'])})"
            f" | {r['deep']['modules_reloaded']} ({r['deep_importers']} importers), "
            f"{fmt(r['deep']['latency']['median_ms'])} ({fmt(r['deep']['engine']['median_ms'])})"
            f" | {r['leaf']['misses'] + r['deep']['misses']} |"
        )
    largest = result["rows"][-1] if result["rows"] else None
    if largest and largest.get("leaf_profile"):
        prof = largest["leaf_profile"]
        lines += [
            "",
            f"cProfile of one more leaf reload at {largest['modules']} modules "
            f"(`Reloader.reload(paths=[leaf])`, watcher stopped, {prof['ms']:.1f} ms under the "
            "profiler), top 12 by own time:",
            "",
            "```",
            prof["top_tottime"],
            "```",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", choices=["hotmod", "werkzeug"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "hotmod":
        hotmod_worker(
            args.root,
            json.loads(args.spec),
            Settings.from_json(args.settings),
        )
        return 0
    if args.worker == "werkzeug":
        werkzeug_worker(args.root)
        return 0
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    print(render(run(mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
