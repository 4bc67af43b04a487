"""Soak: 1,000 reloads under light load against one ``hotmod serve`` process, on the
WSGI path and then on the ASGI path.

The Flask bench app (PostgreSQL pool when a server answers, else SQLite) is
served by ``hotmod serve app.wsgi:app`` in debug mode, so that ``/__hotmod__``
tells the live generations and leaks. A client thread keeps a light load on
``/api/items`` (about 20 requests a second) while the view module is edited
again and again (atomic rename and in-place write alternate), each edit waited
for until its text is served. At the start and every 100 reloads: the
process's RSS, open descriptors and threads (from /proc), live generations
(current + draining) and leaks (from the status), PostgreSQL backends with our
``application_name``, and connections the app opened (its own counter).

Each reload's time is also split with the engine's history entry (its ``time``
and ``duration_ms``): edit → reload start (event delivery, debounce, planning),
reload (executing the plan, swap), reload end → first response with the new text.

The ASGI half does the same to bench/apps/asgisoak, a FastAPI app served by
``hotmod serve app.main:app`` on uvicorn: its psycopg ``AsyncConnectionPool`` (or
SQLite from worker threads) is opened by the first lifespan and crosses reloads by
``__mp_clone__``, each generation runs its own lifespan on the server's loop, and the
samples add the app's own count of lifespans running and its pool's size. At the end
of each half, once the leak checks have run, the leak list is read from
``/__hotmod__``.

Run alone: ``python -m bench.soak [--quick|--smoke] [--asgi|--wsgi]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    BENCH_DIR,
    MARKER_LINE,
    VENV_BIN,
    AppCopy,
    Pending,
    Server,
    fmt,
    free_port,
    hotmod_cli,
    http_get,
    log,
    pg_backends,
    poll_until,
    postgres_dsn,
    proc_status,
    scratch_dir,
    summary_ms,
)


@dataclass(frozen=True)
class Settings:
    reloads: int
    sample_every: int
    load_interval: float  # seconds between two background requests
    edit_timeout: float


ASGI_APP = BENCH_DIR / "apps" / "asgisoak"
#: The target ``hotmod serve`` is given, per interface.
TARGETS = {"wsgi": "app.wsgi:app", "asgi": "app.main:app"}
#: Seconds to wait, at the end, for the leak checks still due (one runs a second
#: after the last retirement).
LEAK_CHECK_WAIT = 15.0

SETTINGS = {
    "full": Settings(1_000, 100, 0.05, 10.0),
    "quick": Settings(100, 25, 0.05, 10.0),
    "smoke": Settings(10, 5, 0.05, 10.0),
}


class Load:
    """A light, steady background load; counts answers that were not 200."""

    def __init__(self, port: int, interval: float) -> None:
        self._port = port
        self._interval = interval
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._idle = threading.Event()
        self.requests = 0  # written by the load thread only
        self.failures: dict[str, int] = {}  # written by the load thread only
        self._thread = threading.Thread(target=self._run, name="soak-load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No request of ours in flight while the body runs (bounded wait)."""
        self._idle.clear()
        self._pause.set()
        self._idle.wait(timeout=10)
        try:
            yield
        finally:
            self._pause.clear()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._pause.is_set():
                self._idle.set()
                continue
            status, _, error = http_get(self._port, "/api/items", timeout=5.0)
            self.requests += 1
            kind = error or ("" if status == 200 else f"http {status}")
            if kind:
                self.failures[kind] = self.failures.get(kind, 0) + 1


def status(port: int) -> dict[str, Any]:
    code, body, error = http_get(port, "/__hotmod__", timeout=5.0)
    if code != 200:
        raise RuntimeError(f"/__hotmod__ answered {code or error}")
    data: dict[str, Any] = json.loads(body)
    return data


def health(port: int) -> dict[str, Any]:
    """The ASGI app's own view: lifespans running, connections in its pool."""
    code, body, error = http_get(port, "/admin/health", timeout=5.0)
    if code != 200:
        raise RuntimeError(f"/admin/health answered {code or error}")
    data = json.loads(body)
    return {"lifespans_running": data["lifespans_running"], "pool_size": data["pool_size"]}


def leaks_at_end(port: int, timeout: float = LEAK_CHECK_WAIT) -> dict[str, Any]:
    """The leak list once no leak check is due any more (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        st = status(port)
        if not st.get("leak_checks_pending") or time.monotonic() > deadline:
            return {
                "leaked": st["leaked"],
                "leak_checks_pending": st.get("leak_checks_pending", 0),
                "stale": st.get("stale", []),
                "draining": st["draining"],
            }
        time.sleep(0.1)


def trim_heap(port: int) -> dict[str, Any]:
    """The ASGI app's RSS before and after glibc's ``malloc_trim``: how much of the RSS
    growth is freed memory the allocator kept (read once, at the end: trimming at every
    sample would change what the later samples read)."""
    code, body, error = http_get(port, "/admin/trim", timeout=10.0)
    if code != 200:
        raise RuntimeError(f"/admin/trim answered {code or error}")
    data: dict[str, Any] = json.loads(body)
    return data


def copy_asgi_app(parent: Path, name: str) -> AppCopy:
    """A private copy of bench/apps/asgisoak, edited as the Flask app's copy is."""
    root = parent / name
    shutil.copytree(ASGI_APP, root, ignore=shutil.ignore_patterns("__pycache__", "var"))
    view = root / "app" / "views" / "pages.py"
    original = view.read_text()
    if not MARKER_LINE.search(original):
        raise RuntimeError(f"{view} has no MARKER line to edit")
    return AppCopy(root=root, view=view, original=original, open_log=root / "db-opens.log")


def settled(pid: int, *, timeout: float = 2.0) -> dict[str, int]:
    """/proc readings once threads and descriptors hold still (request threads gone)."""
    previous = proc_status(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.03)
        current = proc_status(pid)
        if (current["threads"], current["fds"]) == (previous["threads"], previous["fds"]):
            return current
        previous = current
    return previous


def sample(
    server: Server,
    copy: AppCopy,
    dsn: str,
    app_name: str,
    reloads: int,
    load: Load,
    *,
    interface: str = "wsgi",
) -> dict[str, Any]:
    with load.paused():
        readings = settled(server.pid)
        st = status(server.port)
        app_side = health(server.port) if interface == "asgi" else {}
    return {
        **app_side,
        "reloads": reloads,
        **readings,
        "generation": st["generation"],
        "live_generations": 1 + len(st["draining"]),
        "leaked": len(st["leaked"]) if isinstance(st["leaked"], list) else st["leaked"],
        "pg_backends": pg_backends(dsn, app_name),
        "db_opens": copy.db_opens(),
    }


def run(
    mode: str = "full", *, dsn: str | None = None, interfaces: Sequence[str] = ("wsgi", "asgi")
) -> dict[str, Any]:
    """The WSGI soak's result, with the ASGI soak's under ``"asgi"`` (each when asked)."""
    if hotmod_cli() is None:
        raise Pending("`hotmod serve` is not available yet (middleware issue)")
    dsn = postgres_dsn() if dsn is None else dsn
    result = soak(mode, "wsgi", dsn) if "wsgi" in interfaces else {}
    if "asgi" in interfaces:
        result["asgi"] = soak(mode, "asgi", dsn)
    return result


def soak(mode: str, interface: str, dsn: str) -> dict[str, Any]:
    settings = SETTINGS[mode]
    samples: list[dict[str, Any]] = []
    latencies: list[float] = []
    parts: dict[str, list[float]] = {
        "detect": [],
        "reload": [],
        "serve": [],
        "request": [],
        "steady_request": [],
    }
    failed_polls: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    misses = 0
    with scratch_dir("soak") as scratch:
        copy = copy_asgi_app(scratch, "soak") if interface == "asgi" else AppCopy.create(scratch, "soak")
        port = free_port()
        app_name = f"hotmod-bench-soak-{scratch.name}"
        server = Server(
            name="hotmod",
            argv=[str(VENV_BIN / "hotmod"), "serve", TARGETS[interface], "--port", str(port)],
            cwd=copy.root,
            env=copy.env(database_url=dsn, application_name=app_name),
            port=port,
            log_path=scratch / "soak.log",
        )
        try:
            server.start()
            server.wait_ready()
            with Load(port, settings.load_interval) as load:
                samples.append(sample(server, copy, dsn, app_name, 0, load, interface=interface))
                for n in range(1, settings.reloads + 1):
                    needle = copy.edit(atomic=n % 2 == 1)
                    edited_at = time.time()
                    since = time.perf_counter()
                    result = poll_until(port, needle, since=since, timeout=settings.edit_timeout)
                    for kind, count in result.errors.items():
                        failed_polls[kind] = failed_polls.get(kind, 0) + count
                    if not result.seen:
                        misses += 1
                        log(f"soak: reload {n} not served in {settings.edit_timeout}s")
                        continue
                    latencies.append(result.latency_s)
                    split = _split(status(port), edited_at, edited_at + result.latency_s)
                    split["request"] = result.request_s
                    t0 = time.perf_counter()
                    http_get(port, "/", timeout=5.0)
                    split["steady_request"] = time.perf_counter() - t0
                    for key, value in split.items():
                        parts[key].append(value)
                    records.append(
                        {
                            "reload": n,
                            "how": "rename" if n % 2 == 1 else "in-place",
                            "latency_s": result.latency_s,
                            **split,
                        }
                    )
                    if n % settings.sample_every == 0:
                        samples.append(sample(server, copy, dsn, app_name, n, load, interface=interface))
                        s = samples[-1]
                        log(
                            f"soak {interface}: {n} reloads rss={s['rss_kib'] / 1024:.1f}MiB fds={s['fds']}"
                            f" threads={s['threads']} live={s['live_generations']}"
                            f" leaked={s['leaked']} pg={s['pg_backends']} opens={s['db_opens']}"
                        )
            load_requests, load_failures = load.requests, dict(load.failures)
            at_end = leaks_at_end(port)
            if interface == "asgi":
                at_end["heap"] = trim_heap(port)
        finally:
            server.stop()
        errors_logged = _errors_logged(scratch / "soak.log")
    first, last = samples[0], samples[-1]
    warm = samples[min(1, len(samples) - 1)]
    growth_app = (
        {
            "lifespans_running": last["lifespans_running"] - first["lifespans_running"],
            "pool_size": last["pool_size"] - first["pool_size"],
        }
        if interface == "asgi"
        else {}
    )
    return {
        "mode": mode,
        "interface": interface,
        "target": TARGETS[interface],
        "settings": settings.__dict__,
        "database": "postgresql" if dsn else "sqlite",
        "samples": samples,
        "latency": summary_ms(latencies),
        "breakdown": {k: summary_ms(v) for k, v in parts.items()},
        "records": records,
        "misses": misses,
        "failed_polls": failed_polls,
        "load_requests": load_requests,
        "load_failures": load_failures,
        "at_end": at_end,
        "errors_logged": errors_logged,
        "growth": {
            **growth_app,
            "rss_mib": round((last["rss_kib"] - first["rss_kib"]) / 1024, 1),
            "rss_mib_after_first_sample": round((last["rss_kib"] - warm["rss_kib"]) / 1024, 1),
            "fds": last["fds"] - first["fds"],
            "threads": last["threads"] - first["threads"],
            # The first reload starts the engine's helper threads once; growth after it is
            # what a leak would look like.
            "fds_after_first_sample": last["fds"] - warm["fds"],
            "threads_after_first_sample": last["threads"] - warm["threads"],
            "pg_backends": (
                None if first["pg_backends"] is None else last["pg_backends"] - first["pg_backends"]
            ),
            "db_opens": last["db_opens"] - first["db_opens"],
            "leaked": last["leaked"],
        },
    }


def _errors_logged(path: Path) -> list[str]:
    """The server's ERROR and WARNING lines, hotmod's and uvicorn's (a failed lifespan,
    a leak, a purge that raised, an exception in the app)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [
        line
        for line in text.splitlines()
        if line.startswith(("hotmod: ERROR", "hotmod: WARNING", "ERROR:", "WARNING:"))
    ]


def _split(st: dict[str, Any], edited_at: float, seen_at: float) -> dict[str, float]:
    """Split one reload into detect / reload / serve with the engine's newest history entry."""
    entries = [h for h in st.get("history") or () if h.get("generation") == st["generation"]]
    if not entries or entries[-1].get("time") is None or entries[-1].get("duration_ms") is None:
        return {}
    ended = float(entries[-1]["time"])
    duration = float(entries[-1]["duration_ms"]) / 1000.0
    return {
        "detect": max(0.0, ended - duration - edited_at),
        "reload": duration,
        "serve": max(0.0, seen_at - ended),
    }


def render(result: dict[str, Any]) -> str:
    lines = ["## Soak", ""]
    if "samples" in result:
        lines += _render_one(
            result,
            f"the Flask bench app ({result['database']}) in one `hotmod serve app.wsgi:app` process"
            " (debug mode, for `/__hotmod__`)",
        )
    asgi = result.get("asgi")
    if asgi:
        lines += [
            "",
            "### ASGI",
            "",
            *_render_one(
                asgi,
                f"the FastAPI soak app ({asgi['database']}: its async pool opened by the first"
                " lifespan and handed on by `__mp_clone__`) in one `hotmod serve app.main:app`"
                " process on uvicorn (debug mode, for `/__hotmod__`)",
            ),
        ]
    return "\n".join(lines) + "\n"


def _render_one(result: dict[str, Any], what: str) -> list[str]:
    s = result["settings"]
    g = result["growth"]
    asgi = result.get("interface") == "asgi"
    lines = [
        f"{s['reloads']} reloads of {what}, with "
        f"{1 / s['load_interval']:.0f} background requests a second. Save-to-serve over the "
        f"soak: median {fmt(result['latency']['median_ms'])} ms, p95 "
        f"{fmt(result['latency']['p95_ms'])} ms, max {fmt(result['latency']['max_ms'])} ms; "
        f"{result['misses']} edits not served; background requests "
        f"{result['load_requests']}, failed {sum(result['load_failures'].values())}"
        f"{' ' + str(result['load_failures']) if result['load_failures'] else ''}; failed polls "
        f"{sum(result['failed_polls'].values())}.",
        "",
        "| reloads | RSS MiB | fds | threads | live generations | leaked | PostgreSQL backends "
        "| db connections opened (total) |" + (" lifespans running | pool size |" if asgi else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if asgi else ""),
    ]
    for r in result["samples"]:
        lines.append(
            f"| {r['reloads']} | {r['rss_kib'] / 1024:.1f} | {r['fds']} | {r['threads']} "
            f"| {r['live_generations']} | {r['leaked']} | {fmt(r['pg_backends'])} "
            f"| {r['db_opens']} |" + (f" {r['lifespans_running']} | {r['pool_size']} |" if asgi else "")
        )
    lines += [
        "",
        f"Growth first → last sample: RSS {g['rss_mib']} MiB ({g['rss_mib_after_first_sample']} "
        f"MiB after the first {s['sample_every']} reloads), fds {g['fds']:+d} "
        f"({g.get('fds_after_first_sample', 0):+d} after them), threads {g['threads']:+d} "
        f"({g.get('threads_after_first_sample', 0):+d} after them), PostgreSQL backends "
        f"{fmt(g['pg_backends'])}, db connections opened {g['db_opens']}, leaked generations "
        f"{g['leaked']}"
        + (f", lifespans running {g['lifespans_running']:+d}, pool size {g['pool_size']:+d}" if asgi else "")
        + ".",
    ]
    end = result.get("at_end")
    if end is not None:  # absent from results stored before it was read
        logged = result.get("errors_logged", [])
        lines += [
            "",
            f"At the end, once the leak checks had run ({end['leak_checks_pending']} still due): "
            f"leaked {len(end['leaked']) if isinstance(end['leaked'], list) else end['leaked']}"
            f"{' ' + json.dumps(end['leaked'])[:300] if end['leaked'] else ''}, stale holders "
            f"{len(end['stale'])}, generations draining {len(end['draining'])}; errors and "
            f"warnings in the server's log: {len(logged)}"
            f"{' (first: `' + logged[0][:200] + '`)' if logged else ''}.",
        ]
        heap = end.get("heap")
        if heap and heap.get("trimmed") is not None:
            first = result["samples"][0]["rss_kib"]
            lines += [
                "",
                f"RSS at the end {heap['rss_kib_before'] / 1024:.1f} MiB, and "
                f"{heap['rss_kib_after'] / 1024:.1f} MiB once glibc's `malloc_trim(0)` handed the "
                f"free heap back ({(heap['rss_kib_after'] - first) / 1024:+.1f} MiB from the first "
                "sample): what the trim removed was memory already freed and kept by the allocator, "
                "not live objects.",
            ]
    b = result["breakdown"]
    if b["reload"]["n"]:
        first_request = (
            "the first request on a fresh FastAPI app object, which builds its middleware stack"
            if asgi
            else "the first request on a fresh Flask app object, e.g. Jinja compiling its templates again"
        )
        lines += [
            "",
            "Where a reload's time goes (medians over the soak, from the engine's history): "
            f"edit → reload start (event, debounce, plan) {fmt(b['detect']['median_ms'])} ms; "
            f"executing the plan and swapping {fmt(b['reload']['median_ms'])} ms; reload end → "
            f"first response with the new text {fmt(b['serve']['median_ms'])} ms, of which the "
            f"request that showed it took {fmt(b.get('request', {}).get('median_ms'))} ms (the next request "
            f"to the same page: {fmt(b.get('steady_request', {}).get('median_ms'))} ms; the difference is "
            f"{first_request}) and the rest is the probe in flight at the swap, still on the old "
            "generation, plus up to 1 ms of poll interval.",
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--asgi", action="store_true", help="the ASGI soak only")
    only.add_argument("--wsgi", action="store_true", help="the WSGI soak only")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    interfaces = ("asgi",) if args.asgi else ("wsgi",) if args.wsgi else ("wsgi", "asgi")
    result = run(mode, interfaces=interfaces)
    print(render(result))
    halves = [r for r in (result, result.get("asgi")) if r and "misses" in r]
    return 0 if all(r["misses"] == 0 for r in halves) else 1


if __name__ == "__main__":
    raise SystemExit(main())
