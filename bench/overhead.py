"""Per-request cost of ``HotReload``: in-process nanoseconds, and throughput under a real server.

1. In process: the same trivial WSGI app called bare and through ``HotReload``
   (production mode, watcher running, as deployed), each call consumed and closed as a
   server would. Calls are timed in chunks and the chunks alternate bare / wrapped so
   that frequency scaling and noise from other processes hit both sides alike; the
   result is the median of the per-chunk ns/request (1,000,000 calls per side). Chunks
   are timed in this thread's CPU time (``time.thread_time_ns``), so time spent
   descheduled on a busy machine is not counted.
2. Under a server: gunicorn (1 gthread worker, 4 threads, keep-alive) serving the bare
   app and the wrapped app in alternating rounds A B A B, loaded by ``wrk`` when it is
   installed (``apt-get install -y wrk``), otherwise by a bounded Python client; 7
   rounds of 3 s per side (1 of 2 s with ``--quick``).
   The ratio is median wrapped req/s over median bare req/s. Beside it, the server's
   CPU time per request (its process group's user + system time from /proc over the
   requests served): the client shares the 2 cores, so req/s moves with whatever else
   runs, while the server's own CPU per request shows what the wrapper costs it.
3. The ASGI path, the same two ways: in process, a trivial raw ASGI app and a FastAPI
   app awaited bare and through ``HotReload`` (an :class:`AsgiHotReload`) by one
   coroutine on one event loop, after a lifespan startup as a server would drive it;
   chunks alternate and are timed in thread CPU time as above (1,000,000 calls per side
   for the raw app, 100,000 for FastAPI). Under a server: uvicorn (one process, its
   default asyncio loop and h11) serving the bare app and the wrapped app in alternating
   rounds, loaded as gunicorn is.

Run: ``python -m bench.overhead [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from bench._harness import group_cpu_seconds

APP_SOURCE = """
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "2")]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [b"ok"]
"""

ENTRY_SOURCE = """
import os
from hotmod.middleware import HotReload
import hm_bench_app

bare = hm_bench_app.app
wrapped = HotReload("hm_bench_app:app", watch=[os.environ["HM_BENCH_ROOT"]])
"""


ASGI_APP_SOURCE = """
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]}
BODY = {"type": "http.response.body", "body": b"ok"}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(BODY)
"""

FASTAPI_APP_SOURCE = """
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def index():
    return "ok"
"""

ASGI_ENTRY_SOURCE = """
import os
from hotmod.middleware import HotReload
import hm_bench_asgi_app

bare = hm_bench_asgi_app.app
wrapped = HotReload("hm_bench_asgi_app:app", watch=[os.environ["HM_BENCH_ROOT"]])
"""


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def _chunk_ns(app: Callable[..., Iterable[bytes]], calls: int) -> float:
    """ns per request for ``calls`` requests, each consumed and closed as a server would."""
    environ = _environ()
    start_response = _start_response
    begin = time.thread_time_ns()
    for _ in range(calls):
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.thread_time_ns() - begin) / calls


def _engine_only(wrapped: Any) -> Callable[..., Iterable[bytes]]:
    """The engine's share alone: enter the generation, call, leave (what HotReload adds
    on top of this is its own cost)."""
    acquire = wrapped.reloader.acquire

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        generation = acquire()
        try:
            result: Iterable[bytes] = generation.target(environ, start_response)
        finally:
            generation.exit()
        return result

    return app


def in_process(*, calls: int, chunk: int, root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(root))
    import hm_bench_app  # type: ignore[import-not-found]

    from hotmod.middleware import HotReload

    bare = hm_bench_app.app
    results: dict[str, Any] = {"calls_per_side": calls, "chunk": chunk}
    for mode, debug in (("production", False), ("debug", True)):
        wrapped = HotReload("hm_bench_app:app", watch=[root], debug=debug)
        sides = {"bare": bare, "engine": _engine_only(wrapped), "wrapped": wrapped}
        samples: dict[str, list[float]] = {name: [] for name in sides}
        try:
            for app in sides.values():  # warm up
                _chunk_ns(app, chunk)
            for _ in range(calls // chunk):
                for name, app in sides.items():
                    samples[name].append(_chunk_ns(app, chunk))
        finally:
            wrapped.close()
        results[mode] = _medians(samples)
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout}s")


def _wrk(port: int, seconds: float, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(match.group(1))


def _python_client(port: int, seconds: float, connections: int) -> float:
    import http.client

    stop = time.monotonic() + seconds
    counts = [0] * connections
    failures: list[str] = []

    def run(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() < stop:
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(str(response.status))
                    return
                counts[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    if failures:
        raise RuntimeError(f"the client saw non-200 responses: {failures[:5]}")
    return sum(counts) / (time.monotonic() - begin)


def under_server(*, rounds: int, seconds: float, root: Path) -> dict[str, Any]:
    gunicorn = Path(sys.executable).parent / "gunicorn"

    def argv(side: str, port: int) -> list[str]:
        return [
            str(gunicorn),
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "5",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            f"hm_bench_entry:{side}",
        ]

    rates, cpu_us, load = _rounds(rounds=rounds, seconds=seconds, root=root, argv=argv)
    bare = statistics.median(rates["bare"])
    wrapped = statistics.median(rates["wrapped"])
    return {
        "server": "gunicorn -w 1 -k gthread --threads 4",
        "load": "wrk -t1 -c8" if load is _wrk else "python http.client, 8 keep-alive threads",
        "seconds_per_round": seconds,
        "bare_rps": [round(r) for r in rates["bare"]],
        "wrapped_rps": [round(r) for r in rates["wrapped"]],
        "ratio": round(wrapped / bare, 4),
        "bare_cpu_us_per_request": [round(c, 1) for c in cpu_us["bare"]],
        "wrapped_cpu_us_per_request": [round(c, 1) for c in cpu_us["wrapped"]],
    }


AsgiApp = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


async def _asgi_chunk_ns(app: AsgiApp, calls: int) -> float:
    """ns per request for ``calls`` requests awaited one after another on this loop."""
    scope, receive, send = _scope(), _receive, _send
    begin = time.thread_time_ns()
    for _ in range(calls):
        await app(scope, receive, send)
    return (time.thread_time_ns() - begin) / calls


def _asgi_engine_only(wrapped: Any) -> AsgiApp:
    """The engine's share alone: enter the generation, await the app, leave."""
    acquire = wrapped.reloader.acquire

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        generation = acquire()
        try:
            await generation.target(scope, receive, send)
        finally:
            generation.exit()

    return app


class _ServerLifespan:
    """The lifespan a server drives: startup before the first request, shutdown after
    the last (for ``HotReload`` this binds the loop and starts the generation's app)."""

    def __init__(self, app: AsgiApp) -> None:
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await asyncio.wait_for(self._from_app.get(), 30)
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup answered {answer}")

    async def shutdown(self) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._from_app.get(), 30)
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)


async def _asgi_sides(module: str, *, calls: int, chunk: int, root: Path) -> dict[str, Any]:
    import importlib

    from hotmod.middleware import HotReload

    bare: AsgiApp = importlib.import_module(module).app
    results: dict[str, Any] = {"calls_per_side": calls, "chunk": chunk}
    for mode, debug in (("production", False), ("debug", True)):
        wrapped: Any = HotReload(f"{module}:app", watch=[root], debug=debug)
        if wrapped.interface != "asgi":
            raise RuntimeError(f"{module}:app was not served as ASGI")
        sides: dict[str, AsgiApp] = {"bare": bare, "engine": _asgi_engine_only(wrapped), "wrapped": wrapped}
        lifespans = [_ServerLifespan(bare), _ServerLifespan(wrapped)]
        samples: dict[str, list[float]] = {name: [] for name in sides}
        try:
            for lifespan in lifespans:
                await lifespan.startup()
            for app in sides.values():  # warm up
                await _asgi_chunk_ns(app, chunk)
            for _ in range(calls // chunk):
                for name, app in sides.items():
                    samples[name].append(await _asgi_chunk_ns(app, chunk))
            for lifespan in lifespans:
                await lifespan.shutdown()
        finally:
            wrapped.close()
        results[mode] = _medians(samples)
    return results


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Bare, wrapped and added ns/request from the per-chunk samples of each side."""
    median = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "bare_ns": round(median["bare"], 1),
        "wrapped_ns": round(median["wrapped"], 1),
        "overhead_ns": round(median["wrapped"] - median["bare"], 1),
        "overhead_ns_paired_median": round(
            statistics.median(w - b for w, b in zip(samples["wrapped"], samples["bare"], strict=True)), 1
        ),
        # acquire() + exit() alone, and what the middleware adds around them.
        "engine_ns": round(median["engine"] - median["bare"], 1),
        "middleware_ns": round(median["wrapped"] - median["engine"], 1),
        # The fastest chunk of each side: the cost with the least interference from
        # other processes, for a machine too busy for the medians to settle.
        "overhead_ns_best_chunks": round(min(samples["wrapped"]) - min(samples["bare"]), 1),
    }


def in_process_asgi(
    *, calls: int, chunk: int, fastapi_calls: int, fastapi_chunk: int, root: Path
) -> dict[str, Any]:
    """The raw ASGI app and the FastAPI app, each on an event loop of its own."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    results: dict[str, Any] = {
        "raw": asyncio.run(_asgi_sides("hm_bench_asgi_app", calls=calls, chunk=chunk, root=root))
    }
    try:
        import fastapi  # noqa: F401
    except ImportError:
        results["fastapi"] = None
    else:
        results["fastapi"] = asyncio.run(
            _asgi_sides("hm_bench_fastapi_app", calls=fastapi_calls, chunk=fastapi_chunk, root=root)
        )
    return results


def _rounds(
    *, rounds: int, seconds: float, root: Path, argv: Callable[[str, int], list[str]]
) -> tuple[dict[str, list[float]], dict[str, list[float]], Callable[[int, float, int], float]]:
    """Alternate bare / wrapped servers (``argv(side, port)``) and load each for ``seconds``:
    req/s, and the server's CPU µs per request (its process group, user + system), which
    the client's share of the 2 cores does not blur as it does req/s."""
    load = _wrk if shutil.which("wrk") else _python_client
    env = dict(os.environ, HM_BENCH_ROOT=str(root), PYTHONPATH=str(root))
    rates: dict[str, list[float]] = {"bare": [], "wrapped": []}
    cpu_us: dict[str, list[float]] = {"bare": [], "wrapped": []}
    for _ in range(rounds):
        for side in ("bare", "wrapped"):
            port = _free_port()
            process = subprocess.Popen(
                argv(side, port),
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                _wait_http(port, 30)
                cpu_before, begin = group_cpu_seconds(process.pid), time.monotonic()
                rate = load(port, seconds, 8)
                cpu, wall = group_cpu_seconds(process.pid) - cpu_before, time.monotonic() - begin
                rates[side].append(rate)
                cpu_us[side].append(cpu / (rate * wall) * 1e6)
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
    return rates, cpu_us, load


def under_uvicorn(*, rounds: int, seconds: float, root: Path) -> dict[str, Any]:
    uvicorn = Path(sys.executable).parent / "uvicorn"

    def argv(side: str, port: int) -> list[str]:
        return [
            str(uvicorn),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "on",
            f"hm_bench_asgi_entry:{side}",
        ]

    rates, cpu_us, load = _rounds(rounds=rounds, seconds=seconds, root=root, argv=argv)
    bare = statistics.median(rates["bare"])
    wrapped = statistics.median(rates["wrapped"])
    return {
        "server": "uvicorn (1 process, asyncio loop, h11)",
        "load": "wrk -t1 -c8" if load is _wrk else "python http.client, 8 keep-alive threads",
        "seconds_per_round": seconds,
        "bare_rps": [round(r) for r in rates["bare"]],
        "wrapped_rps": [round(r) for r in rates["wrapped"]],
        "ratio": round(wrapped / bare, 4),
        "bare_cpu_us_per_request": [round(c, 1) for c in cpu_us["bare"]],
        "wrapped_cpu_us_per_request": [round(c, 1) for c in cpu_us["wrapped"]],
    }


def main(quick: bool) -> dict[str, Any]:
    """Run both measurements; ``quick`` is the few-second smoke mode of the suite."""
    with tempfile.TemporaryDirectory(prefix="hotmod-bench-") as folder:
        root = Path(folder)
        (root / "hm_bench_app.py").write_text(APP_SOURCE)
        (root / "hm_bench_entry.py").write_text(ENTRY_SOURCE)
        (root / "hm_bench_asgi_app.py").write_text(ASGI_APP_SOURCE)
        (root / "hm_bench_fastapi_app.py").write_text(FASTAPI_APP_SOURCE)
        (root / "hm_bench_asgi_entry.py").write_text(ASGI_ENTRY_SOURCE)
        calls, chunk = (100_000, 5_000) if quick else (1_000_000, 10_000)
        fastapi_calls, fastapi_chunk = (10_000, 1_000) if quick else (100_000, 2_000)
        rounds, seconds = (1, 2) if quick else (7, 3)
        before = os.getloadavg()[0]
        results: dict[str, Any] = {
            "in_process": in_process(calls=calls, chunk=chunk, root=root),
            "server": under_server(rounds=rounds, seconds=seconds, root=root),
            "asgi_in_process": in_process_asgi(
                calls=calls, chunk=chunk, fastapi_calls=fastapi_calls, fastapi_chunk=fastapi_chunk, root=root
            ),
            "asgi_server": under_uvicorn(rounds=rounds, seconds=seconds, root=root),
        }
        results["load_average"] = [round(before, 2), round(os.getloadavg()[0], 2)]
        return results


def render(results: dict[str, Any]) -> str:
    """The results as a Markdown table (the suite's RESULTS.md uses it)."""
    rows = [
        "| measure | bare | wrapped | added |",
        "|---|---|---|---|",
    ]
    rows += _in_process_rows("in-process", results["in_process"])
    rows.append(_server_row(results["server"]))
    asgi = results.get("asgi_in_process")
    if asgi:  # absent from results stored before the ASGI rows
        rows += _in_process_rows("ASGI in-process, raw app", asgi["raw"])
        if asgi.get("fastapi"):
            rows += _in_process_rows("ASGI in-process, FastAPI app", asgi["fastapi"])
        rows.append(_server_row(results["asgi_server"]))
    load = results.get("load_average")
    if load:
        rows.append("")
        rows.append(f"Load average before and after: {load[0]} / {load[1]} (2 cores: above 1 is noise).")
    return "\n".join(rows) + "\n"


def _in_process_rows(label: str, ip: dict[str, Any]) -> list[str]:
    rows = []
    for mode in ("production", "debug"):
        r = ip[mode]
        rows.append(
            f"| {label}, {mode} mode (median ns/request, {ip['calls_per_side']:,} calls"
            f" per side) | {r['bare_ns']} | {r['wrapped_ns']} | {r['overhead_ns']} ns"
            f" (engine acquire/exit {r['engine_ns']}, middleware {r['middleware_ns']};"
            f" best chunks {r['overhead_ns_best_chunks']}) |"
        )
    return rows


def _server_row(s: dict[str, Any]) -> str:
    bare = statistics.median(s["bare_rps"])
    wrapped = statistics.median(s["wrapped_rps"])
    row = (
        f"| {s['server']}, {s['load']} (median req/s of {len(s['bare_rps'])} rounds of"
        f" {s['seconds_per_round']} s) | {bare:.0f} | {wrapped:.0f} |"
        f" ratio {s['ratio']}"
    )
    if "bare_cpu_us_per_request" in s:  # absent from results stored before it was measured
        bare_cpu = statistics.median(s["bare_cpu_us_per_request"])
        wrapped_cpu = statistics.median(s["wrapped_cpu_us_per_request"])
        row += (
            f"; server CPU per request {bare_cpu:.0f} → {wrapped_cpu:.0f} µs"
            f" ({wrapped_cpu - bare_cpu:+.0f} µs, medians, 10 ms clock ticks)"
        )
    return row + " |"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args()
    results = main(options.quick)
    print(json.dumps(results, indent=2) if options.json else render(results))
