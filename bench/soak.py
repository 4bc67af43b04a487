"""Soak: 1,000 reloads under light load against one ``hotmod serve`` process.

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

Run alone: ``python -m bench.soak [--quick|--smoke]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench._harness import (
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
    server: Server, copy: AppCopy, dsn: str, app_name: str, reloads: int, load: Load
) -> dict[str, Any]:
    with load.paused():
        readings = settled(server.pid)
        st = status(server.port)
    return {
        "reloads": reloads,
        **readings,
        "generation": st["generation"],
        "live_generations": 1 + len(st["draining"]),
        "leaked": len(st["leaked"]) if isinstance(st["leaked"], list) else st["leaked"],
        "pg_backends": pg_backends(dsn, app_name),
        "db_opens": copy.db_opens(),
    }


def run(mode: str = "full", *, dsn: str | None = None) -> dict[str, Any]:
    settings = SETTINGS[mode]
    if hotmod_cli() is None:
        raise Pending("`hotmod serve` is not available yet (middleware issue)")
    dsn = postgres_dsn() if dsn is None else dsn
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
        copy = AppCopy.create(scratch, "soak")
        port = free_port()
        app_name = f"hotmod-bench-soak-{scratch.name}"
        server = Server(
            name="hotmod",
            argv=[str(VENV_BIN / "hotmod"), "serve", "app.wsgi:app", "--port", str(port)],
            cwd=copy.root,
            env=copy.env(database_url=dsn, application_name=app_name),
            port=port,
            log_path=scratch / "soak.log",
        )
        try:
            server.start()
            server.wait_ready()
            with Load(port, settings.load_interval) as load:
                samples.append(sample(server, copy, dsn, app_name, 0, load))
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
                        samples.append(sample(server, copy, dsn, app_name, n, load))
                        s = samples[-1]
                        log(
                            f"soak: {n} reloads rss={s['rss_kib'] / 1024:.1f}MiB fds={s['fds']}"
                            f" threads={s['threads']} live={s['live_generations']}"
                            f" leaked={s['leaked']} pg={s['pg_backends']} opens={s['db_opens']}"
                        )
            load_requests, load_failures = load.requests, dict(load.failures)
        finally:
            server.stop()
    first, last = samples[0], samples[-1]
    warm = samples[min(1, len(samples) - 1)]
    return {
        "mode": mode,
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
        "growth": {
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
    s = result["settings"]
    g = result["growth"]
    lines = [
        "## Soak",
        "",
        f"{s['reloads']} reloads of the Flask bench app ({result['database']}) in one "
        f"`hotmod serve app.wsgi:app` process (debug mode, for `/__hotmod__`), with "
        f"{1 / s['load_interval']:.0f} background requests a second. Save-to-serve over the "
        f"soak: median {fmt(result['latency']['median_ms'])} ms, p95 "
        f"{fmt(result['latency']['p95_ms'])} ms, max {fmt(result['latency']['max_ms'])} ms; "
        f"{result['misses']} edits not served; background requests "
        f"{result['load_requests']}, failed {sum(result['load_failures'].values())}"
        f"{' ' + str(result['load_failures']) if result['load_failures'] else ''}; failed polls "
        f"{sum(result['failed_polls'].values())}.",
        "",
        "| reloads | RSS MiB | fds | threads | live generations | leaked | PostgreSQL backends "
        "| db connections opened (total) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["samples"]:
        lines.append(
            f"| {r['reloads']} | {r['rss_kib'] / 1024:.1f} | {r['fds']} | {r['threads']} "
            f"| {r['live_generations']} | {r['leaked']} | {fmt(r['pg_backends'])} "
            f"| {r['db_opens']} |"
        )
    lines += [
        "",
        f"Growth first → last sample: RSS {g['rss_mib']} MiB ({g['rss_mib_after_first_sample']} "
        f"MiB after the first {s['sample_every']} reloads), fds {g['fds']:+d} "
        f"({g.get('fds_after_first_sample', 0):+d} after them), threads {g['threads']:+d} "
        f"({g.get('threads_after_first_sample', 0):+d} after them), PostgreSQL backends "
        f"{fmt(g['pg_backends'])}, db connections opened {g['db_opens']}, leaked generations "
        f"{g['leaked']}.",
    ]
    b = result["breakdown"]
    if b["reload"]["n"]:
        lines += [
            "",
            "Where a reload's time goes (medians over the soak, from the engine's history): "
            f"edit → reload start (event, debounce, plan) {fmt(b['detect']['median_ms'])} ms; "
            f"executing the plan and swapping {fmt(b['reload']['median_ms'])} ms; reload end → "
            f"first response with the new text {fmt(b['serve']['median_ms'])} ms, of which the "
            f"request that showed it took {fmt(b.get('request', {}).get('median_ms'))} ms (the next request "
            f"to the same page: {fmt(b.get('steady_request', {}).get('median_ms'))} ms; the difference is "
            "the first request on a fresh Flask app object, e.g. Jinja compiling its templates "
            "again) and the rest is the probe in flight at the swap, still on the old "
            "generation, plus up to 1 ms of poll interval.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    result = run(mode)
    print(render(result))
    return 0 if result["misses"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
