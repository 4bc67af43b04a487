"""Event-loop lag during reloads on the ASGI path: how long a reload holds the loop.

``HotReload`` runs a plan on the watcher's thread and only asks the server's loop for
the new app's lifespan startup, the old one's shutdown and any async purge hook
(middleware/_asgi.py). Whatever else holds the loop during a reload shows here: the
plan's module code competing for the GIL, the first request on a fresh app object,
the leak check's garbage collection a second after the old generation retired.

One process, one event loop (``asyncio.run``), as a server would run it: a FastAPI app
of 45 modules generated in a temporary folder (30 routers of 4 routes with a pydantic
model each, 10 service modules, shared schemas, a lifespan), served through
``HotReload`` in production mode with its watcher, after a server-style lifespan
startup. On the loop, all the time:

* the probe: a task that sleeps 1 ms and records how late it woke (the overshoot,
  from ``time.perf_counter``);
* a light load: one in-process request every 5 ms to the router that is edited.

The run alternates an idle window (no edit, ``IDLE_S``) with a reload window: a file is
saved (atomic rename), the watcher plans and swaps, and the window lasts until
``AFTER_S`` after the swap, which covers the new app's first requests, the old
generation's retirement and lifespan shutdown, and the leak check (it collects 1 s
after the last retirement, and once more about a second later when an old instance
was still alive at its first look). Edits alternate between a leaf router (plan: that router
and ``main``, which builds the app again) and the shared schemas module (plan: the
schemas, every router and ``main``). Overshoots are reported per phase: idle; from
the save to the swap (detection, debounce, the plan on the watcher's thread, the
lifespan startup on the loop); after the swap.

Run alone: ``python -m bench.loop_lag [--quick|--smoke] [--json PATH]``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import emit, fmt, log, mode_of, percentile, save_edit, scratch_dir, section_parser

#: The probe's sleep.
INTERVAL_S = 0.001
#: Seconds between two requests of the background load.
LOAD_INTERVAL_S = 0.005
#: How long a reload window lasts after the swap: the leak check collects 1 s after the
#: old generation retired, and again about 1 s after that for what its first look found
#: alive.
AFTER_S = 2.6
#: How long an idle window lasts.
IDLE_S = 1.0
ROUTERS = 30
SERVICES = 10


@dataclass(frozen=True)
class Settings:
    reloads: int  # half leaf, half deep
    swap_timeout: float


SETTINGS = {
    "full": Settings(40, 20.0),
    "quick": Settings(10, 20.0),
    "smoke": Settings(2, 20.0),
}

SCHEMAS = """
from datetime import datetime

from pydantic import BaseModel, Field

VERSION = 0


class Page(BaseModel):
    offset: int = Field(0, ge=0)
    limit: int = Field(20, ge=1, le=100)


class Audit(BaseModel):
    created: datetime | None = None
    updated: datetime | None = None
    author: str = "bench"


class Problem(BaseModel):
    code: str
    detail: str
"""

SERVICE = """
from lagapp.schemas import Page

CACHE = {{}}


def window(page: Page, total: int) -> range:
    return range(page.offset, min(total, page.offset + page.limit))


def describe{n}(name: str) -> str:
    key = ("service{n}", name)
    if key not in CACHE:
        CACHE[key] = f"service {n}: {{name}}"
    return CACHE[key]
"""

ROUTER = """
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from lagapp.schemas import Audit, Page, Problem
from lagapp.services import s{service:02d} as service

MARKER = "r{n:02d}-0"

router = APIRouter(prefix="/r{n:02d}", tags=["r{n:02d}"])


class Thing{n}(BaseModel):
    id: int
    name: str
    price_cents: int
    audit: Audit = Audit()


THINGS = [Thing{n}(id=i, name=service.describe{service}(str(i)), price_cents=100 * i) for i in range(20)]


@router.get("/marker")
async def marker() -> dict[str, str]:
    return {{"marker": MARKER}}


@router.get("/things", response_model=list[Thing{n}])
async def things(page: Page = Depends()) -> list[Thing{n}]:
    return [THINGS[i] for i in service.window(page, len(THINGS))]


@router.get("/things/{{thing_id}}", response_model=Thing{n}, responses={{404: {{"model": Problem}}}})
async def thing(thing_id: int) -> Thing{n}:
    if not 0 <= thing_id < len(THINGS):
        raise HTTPException(404, "no such thing")
    return THINGS[thing_id]


@router.post("/things", response_model=Thing{n}, status_code=201)
async def create(new: Thing{n}) -> Thing{n}:
    return new
"""

MAIN = """
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lagapp.routers import {routers}


@asynccontextmanager
async def lifespan(app):
    app.state.ready = True
    yield


app = FastAPI(title="loop lag", lifespan=lifespan)
for module in ({routers},):
    app.include_router(module.router)
"""


def write_app(root: Path) -> tuple[Path, Path]:
    """The generated app under ``root``; returns (a leaf router, the shared schemas)."""
    package = root / "lagapp"
    for folder in (package, package / "routers", package / "services"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (package / "schemas.py").write_text(SCHEMAS)
    for n in range(SERVICES):
        (package / "services" / f"s{n:02d}.py").write_text(SERVICE.format(n=n))
    for n in range(ROUTERS):
        router = ROUTER.format(n=n, service=n % SERVICES)
        (package / "routers" / f"r{n:02d}.py").write_text(router)
    names = ", ".join(f"r{n:02d}" for n in range(ROUTERS))
    (package / "main.py").write_text(MAIN.format(routers=names))
    return package / "routers" / "r07.py", package / "schemas.py"


class Probe:
    """Overshoots of a 1 ms sleep, each with the time it was taken (this loop only)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter at wake-up, overshoot s)

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(INTERVAL_S)
            now = time.perf_counter()
            self.samples.append((now, max(0.0, now - before - INTERVAL_S)))


class Collections:
    """Every garbage collection of the process, timed through ``gc.callbacks`` (any
    thread): a collection holds the GIL from start to stop, so the loop waits for it."""

    def __init__(self) -> None:
        self.done: list[tuple[float, float, int, str]] = []  # (start, seconds, generation, thread)
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = now
        elif thread in self._started:
            began = self._started.pop(thread)
            self.done.append((began, now - began, int(info["generation"]), threading.current_thread().name))

    def __enter__(self) -> Collections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Load:
    """A request every ``LOAD_INTERVAL_S`` to ``path``, in-process, on this loop."""

    def __init__(self, app: Any, path: str) -> None:
        self._app = app
        self._path = path
        self.requests = 0
        self.failures = 0
        self.slowest_s = 0.0
        #: generation → (seconds of its first request, of its slowest later one)
        self.by_generation: dict[int, list[float]] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(LOAD_INTERVAL_S)
            started = time.perf_counter()
            status, generation = await self.get()
            took = time.perf_counter() - started
            self.slowest_s = max(self.slowest_s, took)
            self.requests += 1
            self.failures += status != 200
            seen = self.by_generation.get(generation)
            if seen is None:
                self.by_generation[generation] = [took, 0.0]
            else:
                seen[1] = max(seen[1], took)

    async def get(self) -> tuple[int, int]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": self._path, "raw_path": self._path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"127.0.0.1")], "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 50000), "state": {},
        }  # fmt: skip
        await self._app(scope, receive, send)
        generation = scope.get("hotmod.generation")
        return (int(sent[0]["status"]) if sent else 0), generation if isinstance(generation, int) else 0


class Swaps:
    """The engine's events, stamped on arrival with ``perf_counter`` (any thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, int, float]] = []  # (at, kind, generation, duration_ms)
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append((time.perf_counter(), str(event.kind), event.generation, event.duration_ms))

    def swapped(self, generation: int) -> tuple[float, float] | None:
        """(when the event arrived, the plan's duration in s) for ``generation``'s reload."""
        with self._lock:
            for at, kind, number, duration_ms in self.events:
                if kind == "reloaded" and number == generation:
                    return at, duration_ms / 1000.0
        return None


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[Any], asyncio.Queue[Any]]:
    to_app: asyncio.Queue[Any] = asyncio.Queue()
    from_app: asyncio.Queue[Any] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    answer = await asyncio.wait_for(from_app.get(), 30)
    if answer["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup answered {answer}")
    return task, to_app, from_app


async def _measure(app: Any, settings: Settings, leaf: Path, deep: Path) -> dict[str, Any]:
    probe, load, swaps, collections = Probe(), Load(app, "/r07/marker"), Swaps(), Collections()
    unsubscribe = app.reloader.subscribe(swaps)
    life, to_app, from_app = await _lifespan(app)
    tasks = [asyncio.create_task(probe.run()), asyncio.create_task(load.run())]
    windows: list[dict[str, Any]] = []
    originals = {leaf: leaf.read_text(), deep: deep.read_text()}
    collections.__enter__()
    try:
        await asyncio.sleep(0.5)  # the loop's own start-up noise
        for n in range(1, settings.reloads + 1):
            begin = time.perf_counter()
            await asyncio.sleep(IDLE_S)
            windows.append({"kind": "idle", "begin": begin, "end": time.perf_counter()})
            path = leaf if n % 2 == 1 else deep
            if path is leaf:
                text = originals[leaf].replace('MARKER = "r07-0"', f'MARKER = "r07-{n}"')
            else:
                text = originals[deep].replace("VERSION = 0", f"VERSION = {n}")
            expected = app.generation + 1
            edited = time.perf_counter()
            save_edit(path, text, atomic=True)
            deadline = edited + settings.swap_timeout
            while (swap := swaps.swapped(expected)) is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            if swap is None:
                raise RuntimeError(f"reload {n} ({path.name}) was not swapped in {settings.swap_timeout} s")
            swapped, plan_s = swap
            await asyncio.sleep(max(0.0, swapped + AFTER_S - time.perf_counter()))
            windows.append(
                {
                    "kind": "leaf" if path is leaf else "deep",
                    "edited": edited,
                    "swapped": swapped,
                    "plan_s": plan_s,
                    "end": time.perf_counter(),
                }
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await to_app.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(from_app.get(), 30)
        await asyncio.wait_for(life, 30)
        unsubscribe()
        collections.__exit__()
    return _summarise(probe.samples, windows, swaps.events, load, collections.done)


def _summarise(
    samples: list[tuple[float, float]],
    windows: list[dict[str, Any]],
    events: list[tuple[float, str, int, float]],
    load: Load,
    collections: list[tuple[float, float, int, str]],
) -> dict[str, Any]:
    phases: dict[str, list[float]] = {"idle": [], "save_to_swap": [], "after_swap": []}
    by_kind: dict[str, list[float]] = {"leaf": [], "deep": []}
    worst: list[dict[str, Any]] = []
    index = 0
    ordered = sorted(samples)
    for window in windows:
        begin: float = window["begin"] if window["kind"] == "idle" else window["edited"]
        while index < len(ordered) and ordered[index][0] < begin:
            index += 1
        while index < len(ordered) and ordered[index][0] <= window["end"]:
            at, overshoot = ordered[index]
            index += 1
            if window["kind"] == "idle":
                phases["idle"].append(overshoot)
                continue
            phase = "save_to_swap" if at < window["swapped"] else "after_swap"
            phases[phase].append(overshoot)
            by_kind[window["kind"]].append(overshoot)
            held_from = at - overshoot  # when the loop should have woken
            worst.append(
                {
                    "overshoot_ms": round(overshoot * 1000, 2),
                    "edit": window["kind"],
                    "phase": phase,
                    # What held the loop was running by then.
                    "blocked_from_swap_ms": round((held_from - window["swapped"]) * 1000, 1),
                    "collection": _overlapping(collections, held_from, at),
                }
            )
    worst.sort(key=lambda w: -w["overshoot_ms"])
    reloads = [w for w in windows if w["kind"] != "idle"]
    full = [c for c in collections if c[2] == 2]
    firsts = [first for number, (first, _) in load.by_generation.items() if number > 1]
    laters = [later for number, (_, later) in load.by_generation.items() if later > 0]
    return {
        "interval_ms": INTERVAL_S * 1000,
        "phases": {name: _lag(values) for name, values in phases.items()},
        "reload_windows": {name: _lag(values) for name, values in by_kind.items()},
        "worst": worst[:8],
        "reloads": len(reloads),
        "save_to_swap": _ms([w["swapped"] - w["edited"] for w in reloads]),
        "plan": {
            "leaf": _ms([w["plan_s"] for w in reloads if w["kind"] == "leaf"]),
            "deep": _ms([w["plan_s"] for w in reloads if w["kind"] == "deep"]),
        },
        "retired": sum(1 for e in events if e[1] == "retired"),
        "leaked": sum(1 for e in events if e[1] == "leaked"),
        "failed": sum(1 for e in events if e[1] == "failed"),
        "full_collections": {
            "count": len(full),
            "by_thread": {
                name: _ms([c[1] for c in full if c[3] == name]) for name in sorted({c[3] for c in full})
            },
        },
        "first_request": _ms(firsts),
        "slowest_later_request": _ms(laters),
        "load_requests": load.requests,
        "load_failures": load.failures,
        "slowest_request_ms": round(load.slowest_s * 1000, 2),
    }


def _overlapping(collections: list[tuple[float, float, int, str]], begin: float, end: float) -> str | None:
    """The longest collection that ran while the loop was held, as "gen N, X ms, thread"."""
    during = [c for c in collections if c[0] < end and c[0] + c[1] > begin]
    if not during:
        return None
    _, seconds, generation, thread = max(during, key=lambda c: c[1])
    return f"gen {generation} collection {seconds * 1000:.0f} ms on {thread}"


def _lag(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = [s * 1000 for s in seconds]
    return {
        "samples": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 2),
        "over_10ms": sum(1 for m in ms if m > 10),
    }


def _ms(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0, "median_ms": None, "max_ms": None}
    return {
        "n": len(seconds),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def run(mode: str = "full") -> dict[str, Any]:
    from hotmod.middleware import HotReload

    settings = SETTINGS[mode]
    with scratch_dir("loop-lag") as root:
        leaf, deep = write_app(root)
        sys.path.insert(0, str(root))
        app: Any = None
        try:
            app = HotReload("lagapp.main:app", watch=[root])
            if app.interface != "asgi":
                raise RuntimeError("lagapp.main:app was not served as ASGI")
            modules = sum(1 for name in app.reloader.current.modules if name.startswith("lagapp"))
            log(f"loop lag: {modules} modules, {settings.reloads} reloads")
            measured: Coroutine[Any, Any, dict[str, Any]] = _measure(app, settings, leaf, deep)
            result = asyncio.run(measured)
        finally:
            if app is not None:
                app.close()
            sys.path.remove(str(root))
            for name in [n for n in sys.modules if n == "lagapp" or n.startswith("lagapp.")]:
                del sys.modules[name]
    return {"mode": mode, "modules": modules, "settings": settings.__dict__, **result}


def render(result: dict[str, Any]) -> str:
    p = result["phases"]
    rows = [
        "## Event-loop lag during reloads (ASGI)",
        "",
        f"A task sleeping {fmt(result['interval_ms'], 0)} ms on the server's loop, and how late it woke, "
        f"while {result['reloads']} reloads of a FastAPI app of {result['modules']} modules ran "
        f"(`HotReload`, production, watcher on; half a leaf router, half the shared schemas that "
        f"every router imports), against idle windows between them. A request every "
        f"{fmt(LOAD_INTERVAL_S * 1000, 0)} ms on the same loop: {result['load_requests']} served, "
        f"{result['load_failures']} failed, slowest {fmt(result['slowest_request_ms'])} ms.",
        "",
        "| window | samples | p50 ms | p99 ms | max ms | over 10 ms |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "idle": "idle (no edit)",
        "save_to_swap": "save → swap (watcher, plan on its thread, lifespan startup on the loop)",
        "after_swap": f"swap → +{fmt(AFTER_S)} s (first requests, retirement, leak check)",
    }
    for name, label in labels.items():
        rows.append(_lag_row(label, p[name]))
    for kind, label in (("leaf", "whole window, leaf router edits"), ("deep", "whole window, schemas edits")):
        rows.append(_lag_row(label, result["reload_windows"][kind]))
    plan = result["plan"]
    rows += [
        "",
        f"Plans (on the watcher's thread): leaf median {fmt(plan['leaf']['median_ms'])} ms, "
        f"schemas median {fmt(plan['deep']['median_ms'])} ms; save → swap median "
        f"{fmt(result['save_to_swap']['median_ms'])} ms. Generations retired "
        f"{result['retired']}, leaked {result['leaked']}, failed plans {result['failed']}.",
    ]
    full = result["full_collections"]
    by_thread = "; ".join(
        f"{name} {c['n']} (median {fmt(c['median_ms'])} ms, max {fmt(c['max_ms'])} ms)"
        for name, c in full["by_thread"].items()
    )
    rows += [
        "",
        f"Full garbage collections during the run (`gc.callbacks`): {full['count']}, by thread: "
        f"{by_thread or 'none'}. A collection holds the GIL throughout, so the loop waits for it "
        "whatever thread runs it; hotmod's leak check collects on its janitor thread about 1 s "
        "after a generation retired, and again about 1 s later when an old instance was still "
        "alive at its first look. The first request on each new generation's app took median "
        f"{fmt(result['first_request']['median_ms'])} ms (max {fmt(result['first_request']['max_ms'])} "
        f"ms; the slowest later request per generation: median "
        f"{fmt(result['slowest_later_request']['median_ms'])} ms): a fresh FastAPI object builds its "
        "middleware stack on its first call, on the loop. While a plan runs on the watcher's "
        "thread, the loop gets the GIL back only at the switch interval (5 ms).",
    ]
    if result["worst"]:
        worst = "; ".join(
            f"{w['overshoot_ms']} ms ({w['edit']}, {w['phase'].replace('_', ' ')}, from "
            f"{w['blocked_from_swap_ms']:+} ms after the swap"
            f"{', during a ' + w['collection'] if w.get('collection') else ''})"
            for w in result["worst"][:5]
        )
        rows += ["", f"Largest overshoots: {worst}."]
    return "\n".join(rows) + "\n"


def _lag_row(label: str, lag: dict[str, Any]) -> str:
    return (
        f"| {label} | {lag['samples']} | {fmt(lag['p50_ms'], 3)} | {fmt(lag['p99_ms'], 3)} "
        f"| {fmt(lag['max_ms'], 2)} | {lag.get('over_10ms', 0)} |"
    )


def main() -> int:
    args = section_parser("python -m bench.loop_lag").parse_args()
    emit(run(mode_of(args)), render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
