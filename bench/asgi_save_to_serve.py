"""Save-to-serve on ASGI: hotmod against ``uvicorn --reload``, ``fastapi dev`` and
uvicorn-hmr, A B A B, on the FastAPI bench app.

The method is the WSGI section's (``bench/save_to_serve.py``): for each peer,
rounds alternate a fresh ``hotmod serve`` (A) and the peer (B) on their own tmp
copies of ``bench/apps/fastapiapp``, each alone in its own process group on a
free 127.0.0.1 port. One edit changes ``MARKER`` in ``app/routers/pages.py``
(atomic rename and in-place write alternate); ``GET /`` over a fresh connection
every 1 ms until the new marker is served; refused or reset connections, timeouts
and 5xx count as failed requests, and so do those of a short window after.

What ASGI adds, measured once per server in each pairing's first round:

- an SSE stream (``/live/events``) opened before an edit: does it run to its end,
  on which code (each event carries the marker its code reads), does the edit
  show while it is open, or does the reload wait for its end?
- a WebSocket (``/live/ws``) opened before an edit: does it keep answering on the
  old code, or is it closed (with which code)?
- the event loop's lag: the app's probe (``app/lagprobe.py``, a 1 ms sleep in a
  loop) is read before and after each edit; a reading across a restart is no
  reading, and is shown as such.

uvicorn-hmr needs Python >= 3.12: the section builds a venv for it under
``bench/out/`` with the first such Python it finds (``HOTMOD_BENCH_PY312``,
``python3.12``/``python3.13`` on PATH, pyenv's versions) and says so where there
is none.

Run alone: ``python -m bench.asgi_save_to_serve [--quick|--smoke] [--peer NAME]...``
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._harness import (
    BENCH_DIR,
    FASTAPI_APP,
    VENV_BIN,
    AppCopy,
    Server,
    emit,
    fmt,
    free_port,
    hotmod_cli,
    http_get,
    leaf_pid,
    log,
    mode_of,
    percentile,
    pg_backends,
    poll_until,
    postgres_dsn,
    probe_window,
    scratch_dir,
    section_parser,
)
from bench.save_to_serve import Tally, summarize

HOTMOD = "hotmod"
HMR = "uvicorn-hmr"
HMR_REQUIREMENTS = ("uvicorn-hmr", "uvicorn[standard]", "fastapi", "sqlalchemy", "psycopg[binary]")


class FastAPICopy(AppCopy):
    """A private copy of bench/apps/fastapiapp. Its database and open counter live
    beside the copy, not in it: uvicorn-hmr watches every file under its folder,
    and a write to the SQLite file would count as an edit."""

    @classmethod
    def create(cls, parent: Path, name: str) -> FastAPICopy:
        root = parent / name
        shutil.copytree(FASTAPI_APP, root, ignore=shutil.ignore_patterns("__pycache__", "var"))
        view = root / "app" / "routers" / "pages.py"
        original = view.read_text()
        return cls(root=root, view=view, original=original, open_log=parent / f"{name}-db-opens.log")

    def env(self, *, database_url: str, application_name: str) -> dict[str, str]:
        env = super().env(database_url=database_url, application_name=application_name)
        env["BENCH_DATA_DIR"] = str(self.root.parent / f"{self.root.name}-var")
        return env


# --- the peers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    argv: Callable[[int], list[str]]
    #: What the reload does to the process: "in-process" or "restart".
    kind: str


#: ``uvicorn --reload`` without watchfiles: its StatReload, as a plain ``pip install uvicorn``
#: gets it. Hiding the module is the only switch (uvicorn picks watchfiles when it imports).
_UVICORN_STAT = (
    "import sys; sys.modules['watchfiles'] = None; sys.argv[0] = 'uvicorn'; "
    "from uvicorn.main import main; main()"
)


def _uvicorn_args(port: int) -> list[str]:
    return ["app.main:app", "--reload", "--host", "127.0.0.1", "--port", str(port)]


def _hmr_bin() -> str:
    return str(_hmr_venv_dir() / "bin" / "uvicorn-hmr")


_HOTMOD_SERVE = Contender(
    HOTMOD,
    "`hotmod serve app.main:app --production` (uvicorn inside)",
    lambda port: [
        str(VENV_BIN / "hotmod"),
        "serve",
        "app.main:app",
        "--production",
        "--port",
        str(port),
    ],
    "in-process",
)

CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        _HOTMOD_SERVE,
        Contender(
            "uvicorn",
            "`uvicorn app.main:app --reload` (watchfiles installed, as `uvicorn[standard]` has it)",
            lambda port: [str(VENV_BIN / "uvicorn"), *_uvicorn_args(port)],
            "restart",
        ),
        Contender(
            "uvicorn-stat",
            "`uvicorn app.main:app --reload` without watchfiles (its StatReload)",
            lambda port: [sys.executable, "-c", _UVICORN_STAT, *_uvicorn_args(port)],
            "restart",
        ),
        Contender(
            "fastapi-dev",
            "`fastapi dev app/main.py` (fastapi-cli: uvicorn's reloader)",
            lambda port: [
                str(VENV_BIN / "fastapi"),
                "dev",
                "app/main.py",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            "restart",
        ),
        Contender(
            HMR,
            "`uvicorn-hmr app.main:app` (Python >= 3.12, its own venv)",
            lambda port: [_hmr_bin(), "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
            "in-process",
        ),
    )
}
CONTENDERS["hotmod-middleware"] = Contender(
    "hotmod-middleware",
    '`uvicorn hotreload:app`: `hotmod.HotReload("app.main:app")` under plain uvicorn, '
    "to tell the middleware from `hotmod serve`",
    lambda port: [str(VENV_BIN / "uvicorn"), "hotreload:app", "--host", "127.0.0.1", "--port", str(port)],
    "in-process",
)
PEERS = ("uvicorn", "fastapi-dev", HMR, "uvicorn-stat")
#: On request only (``--peer``): hotmod's middleware as a peer of ``hotmod serve``.
OPTIONAL_PEERS = ("hotmod-middleware",)
QUICK_PEERS = ("uvicorn", "fastapi-dev", HMR)


@dataclass(frozen=True)
class Settings:
    edits: int  # per contender and pairing
    per_round: int
    edit_timeout: float  # seconds to wait for one edit to be served
    misses_allowed: int
    warmup: float  # seconds between "ready" and the first edit
    after: float  # seconds of probing after the new text appeared
    peers: tuple[str, ...]
    stream_events: int  # the SSE stream opened before the live edit: events ...
    stream_interval_ms: int  # ... one every this many ms
    ws_after: float  # seconds the WebSocket keeps talking after the live edit showed


SETTINGS = {
    # 20 edits in two rounds, as the issue measured the peers.
    "full": Settings(20, 10, 8.0, 3, 1.5, 0.3, PEERS, 60, 50, 1.0),
    "quick": Settings(6, 3, 6.0, 3, 1.0, 0.2, QUICK_PEERS, 60, 50, 1.0),
    "smoke": Settings(1, 1, 6.0, 1, 0.3, 0.1, ("uvicorn",), 20, 25, 0.3),
}


# --- uvicorn-hmr's Python ----------------------------------------------------------------------


def python_312() -> Path | None:
    """The first Python >= 3.12 found: ``HOTMOD_BENCH_PY312``, PATH, then pyenv's versions."""
    candidates: list[Path] = []
    if os.environ.get("HOTMOD_BENCH_PY312"):
        candidates.append(Path(os.environ["HOTMOD_BENCH_PY312"]))
    for name in ("python3.12", "python3.13", "python3.14"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        for version in sorted(pyenv.iterdir()):
            if re.fullmatch(r"3\.(1[2-9])\.\d+", version.name):
                candidates.append(version / "bin" / "python3")
    for python in candidates:
        if python.exists() and _version_of(python) >= (3, 12):
            return python
    return None


def _version_of(python: Path) -> tuple[int, int]:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    return int(out[0]), int(out[1])


def _hmr_venv_dir() -> Path:
    return BENCH_DIR / "out" / "venv-uvicorn-hmr"


def hmr_venv() -> tuple[Path | None, str]:
    """uvicorn-hmr's venv, built on first use; (its bin folder or None, what it is or why not)."""
    venv = _hmr_venv_dir()
    stamp = venv / ".bench-requirements"
    wanted = "\n".join(HMR_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "uvicorn-hmr").exists():
        return venv / "bin", _hmr_versions(venv)
    python = python_312()
    if python is None:
        return None, "no Python >= 3.12 on this machine (PATH, pyenv, HOTMOD_BENCH_PY312): not measured"
    log(f"building uvicorn-hmr's venv with {python} in {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *HMR_REQUIREMENTS],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"could not build its venv with {python}: {exc} {detail.decode(errors='replace')[-300:]}"
    stamp.write_text(wanted)
    return venv / "bin", _hmr_versions(venv)


def _hmr_versions(venv: Path) -> str:
    code = (
        "import sys; from importlib.metadata import version as v; "
        "print(f'Python {sys.version.split()[0]}; uvicorn-hmr', v('uvicorn-hmr'), '; hmr', v('hmr'), "
        "'; uvicorn', v('uvicorn'), '; fastapi', v('fastapi'))"
    )
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "versions unknown"
    return out.stdout.strip().replace(" ; ", "; ")


# --- the event loop's lag ----------------------------------------------------------------------


def read_lag(port: int, *, reset: bool = False) -> dict[str, Any] | None:
    status, body, _ = http_get(
        port, "/admin/loop-lag?reset=true" if reset else "/admin/loop-lag", timeout=2.0
    )
    if status != 200:
        return None
    try:
        reading: dict[str, Any] = json.loads(body)
    except ValueError:
        return None
    return reading


def lag_across(before: dict[str, Any] | None, after: dict[str, Any] | None) -> float | None:
    """The largest loop lag (ms) between two readings of one process's probe; None when
    the process (or the probe) changed in between: a restart has no loop to lag."""
    if before is None or after is None:
        return None
    if (before["pid"], before["started_unix"]) != (after["pid"], after["started_unix"]):
        return None
    return float(after["max_ms"])


# --- connections opened before an edit ---------------------------------------------------------


@dataclass
class StreamWatch:
    """What an SSE client sees: each event's time and marker, and how the stream ended."""

    events: list[tuple[float, str, str]] = field(default_factory=list)  # (perf time, event, marker)
    ended: bool = False  # the server's "end" event arrived
    error: str = ""
    closed_at: float | None = None
    first: threading.Event = field(default_factory=threading.Event)

    def run(self, url: str, timeout: float) -> None:
        import httpx

        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(timeout, connect=5.0)) as response:
                kind = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        marker = json.loads(line.removeprefix("data: ")).get("marker", "")
                        self.events.append((time.perf_counter(), kind, marker))
                        self.first.set()
                        if kind == "end":
                            self.ended = True
        except Exception as exc:  # a reset or a cut stream is the measurement, not a bench failure
            self.error = type(exc).__name__
        finally:
            self.closed_at = time.perf_counter()
            self.first.set()


@dataclass
class SocketWatch:
    """What a WebSocket client sees: replies with their markers, and the close code."""

    replies: list[tuple[float, str]] = field(default_factory=list)
    hello: str = ""
    close_code: int | None = None
    close_reason: str = ""
    error: str = ""
    closed_at: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)

    def run(self, url: str, interval: float) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        try:
            with connect(url, open_timeout=5, close_timeout=2) as ws:
                self.hello = json.loads(ws.recv(timeout=5))["hello"]
                self.ready.set()
                number = 0
                while not self.stop.is_set():
                    number += 1
                    ws.send(str(number))
                    reply = json.loads(ws.recv(timeout=10))
                    self.replies.append((time.perf_counter(), reply["marker"]))
                    self.stop.wait(interval)
        except ConnectionClosed as exc:
            received = exc.rcvd
            self.close_code = received.code if received is not None else None
            self.close_reason = received.reason if received is not None else ""
            self.error = "closed by the server" if received is not None else "connection lost"
        except Exception as exc:  # a refused or reset connection is the measurement too
            self.error = type(exc).__name__
        finally:
            self.closed_at = time.perf_counter()
            self.ready.set()


def live_sse(port: int, copy: FastAPICopy, settings: Settings) -> dict[str, Any]:
    """Open the stream, edit after its first events, poll for the edit, see how the stream ends."""
    duration = settings.stream_events * settings.stream_interval_ms / 1000
    url = (
        f"http://127.0.0.1:{port}/live/events?count={settings.stream_events}"
        f"&interval_ms={settings.stream_interval_ms}"
    )
    watch = StreamWatch()
    thread = threading.Thread(target=watch.run, args=(url, duration + 30), daemon=True, name="sse client")
    thread.start()
    if not watch.first.wait(10) or not watch.events:
        thread.join(5)
        return {"outcome": f"the stream did not start ({watch.error or 'no event'})"}
    time.sleep(settings.stream_interval_ms * 4 / 1000)  # a few events on the old code first
    old = copy.marker(copy.edits)
    needle = copy.edit(atomic=True)
    since = time.perf_counter()
    result = poll_until(port, needle, since=since, timeout=duration + settings.edit_timeout)
    thread.join(duration + 30)
    after = [marker for at, _, marker in watch.events if at > since]
    stream_end = (watch.closed_at or time.perf_counter()) - since
    shown_while_open = result.seen and result.latency_s < stream_end
    if not result.seen:
        verdict = "the edit was never served"
    elif watch.ended and all(m == old for m in after):
        verdict = "ran to its end on the old code"
    elif watch.ended:
        verdict = "ran to its end, switching to the new code midway"
    else:
        verdict = f"cut after {len(watch.events)} of {settings.stream_events + 1} events ({watch.error})"
    if result.seen:
        verdict += (
            "; the edit showed while it was open"
            if shown_while_open
            else "; the reload waited for the stream's end"
        )
    return {
        "outcome": verdict,
        "latency_s": result.latency_s if result.seen else None,
        "failed": result.failed,
        "errors": result.errors,
        "events": len(watch.events),
        "events_expected": settings.stream_events + 1,
        "events_after_edit": len(after),
        "after_edit_old": sum(1 for m in after if m == old),
        "after_edit_new": sum(1 for m in after if m == needle.decode()),
        "ended": watch.ended,
        "error": watch.error,
        "stream_end_after_edit_s": round(stream_end, 3),
        "shown_while_open": shown_while_open,
    }


def live_ws(port: int, copy: FastAPICopy, settings: Settings) -> dict[str, Any]:
    """Open the socket, edit, poll for the edit, keep talking a while, see what answered."""
    watch = SocketWatch()
    thread = threading.Thread(
        target=watch.run, args=(f"ws://127.0.0.1:{port}/live/ws", 0.05), daemon=True, name="ws client"
    )
    thread.start()
    if not watch.ready.wait(10) or not watch.hello:
        watch.stop.set()
        thread.join(5)
        return {"outcome": f"the socket did not open ({watch.error or 'no greeting'})"}
    time.sleep(0.2)
    old = copy.marker(copy.edits)
    needle = copy.edit(atomic=True)
    since = time.perf_counter()
    result = poll_until(port, needle, since=since, timeout=settings.edit_timeout)
    deadline = time.perf_counter() + settings.ws_after
    while time.perf_counter() < deadline and thread.is_alive():
        time.sleep(0.01)
    open_at_end = thread.is_alive() and not watch.error
    watch.stop.set()
    thread.join(15)
    after = [marker for at, marker in watch.replies if at > since]
    old_after = sum(1 for m in after if m == old)
    new_after = sum(1 for m in after if m == needle.decode())
    if open_at_end and old_after and not new_after:
        verdict = "kept on the old code"
    elif open_at_end and new_after:
        verdict = (
            f"kept open, answering with the new code ({new_after} of {len(after)} replies after the edit)"
        )
    elif watch.close_code is not None:
        verdict = f"closed with {watch.close_code}" + (
            f" ({watch.close_reason})" if watch.close_reason else ""
        )
    else:
        verdict = f"lost ({watch.error or 'no reply'})"
    if result.seen and watch.closed_at is not None and not open_at_end:
        verdict += f", {(watch.closed_at - since) * 1000:.0f} ms after the edit"
    return {
        "outcome": verdict,
        "latency_s": result.latency_s if result.seen else None,
        "failed": result.failed,
        "errors": result.errors,
        "replies_after_edit": len(after),
        "after_edit_old": old_after,
        "after_edit_new": new_after,
        "close_code": watch.close_code,
        "error": watch.error,
        "open_at_end": open_at_end,
    }


# --- one batch ----------------------------------------------------------------------------------

_RELOADER_LINE = re.compile(r"Started reloader process \[\d+\] using (\w+)")


@dataclass
class Extra:
    """Per contender and pairing, beside the save_to_serve Tally: the ASGI measures."""

    idle_lag_ms: list[float] = field(default_factory=list)
    sse: dict[str, Any] | None = None
    ws: dict[str, Any] | None = None
    reloader: str = ""


def run_batch(
    contender: Contender,
    copy: FastAPICopy,
    tally: Tally,
    extra: Extra,
    *,
    settings: Settings,
    edits: int,
    dsn: str,
    round_no: int,
    live: bool,
) -> None:
    """Start ``contender`` on ``copy``, make ``edits`` edits (then the live ones), stop it."""
    port = free_port()
    app_name = f"hotmod-bench-asgi-{contender.name}-{copy.root.name}"
    server = Server(
        name=contender.name,
        argv=contender.argv(port),
        cwd=copy.root,
        env=copy.env(database_url=dsn, application_name=app_name),
        port=port,
        log_path=copy.root.parent / f"{copy.root.name}.log",
    )
    try:
        server.start()
        ready_s = server.wait_ready(timeout=20.0)
        time.sleep(settings.warmup)
        # The lag a 1 ms poll of / costs with no edit, to read the edits' lag against.
        read_lag(port, reset=True)
        probe_window(
            port, copy.marker(copy.edits).encode(), seconds=min(0.5, settings.warmup), interval=0.001
        )
        idle = read_lag(port)
        if idle is not None:
            extra.idle_lag_ms.append(float(idle["max_ms"]))
        for index in range(edits):
            atomic = copy.edits % 2 == 0
            opens_before = copy.db_opens()
            pid_before = leaf_pid(server.pid)
            lag_before = read_lag(port, reset=True)
            needle = copy.edit(atomic=atomic)
            since = time.perf_counter()
            result = poll_until(port, needle, since=since, timeout=settings.edit_timeout)
            after = probe_window(port, needle, seconds=settings.after) if result.seen else {}
            record = {
                "server": contender.name,
                "round": round_no,
                "edit": copy.edits,
                "how": "rename" if atomic else "in-place",
                "first": index == 0,
                "seen": result.seen,
                "latency_s": result.latency_s if result.seen else None,
                "probes": result.probes,
                "errors": result.errors,
                "after": after,
                "failed": result.failed + sum(v for k, v in after.items() if k != "stale"),
                "stale_after": after.get("stale", 0),
                "db_opens": copy.db_opens() - opens_before,
                "pg_backends": pg_backends(dsn, app_name),
                "restarted": leaf_pid(server.pid) != pid_before,
                "ready_s": ready_s,
                "loop_lag_ms": lag_across(lag_before, read_lag(port)),
            }
            tally.records.append(record)
            shown = f"{result.latency_s * 1000:.1f} ms" if result.seen else "MISSED"
            log(
                f"  {contender.name:14} round {round_no} edit {copy.edits:3} ({record['how']:8})"
                f" {shown:>10}  failed={record['failed']} lag={fmt(record['loop_lag_ms'])} ms"
            )
            if result.seen:
                tally.consecutive_misses = 0
            else:
                tally.consecutive_misses += 1
                if tally.consecutive_misses >= settings.misses_allowed:
                    tally.reloading = False
                    tally.note = (
                        f"not reloading: missed {tally.consecutive_misses} edits in a row"
                        f" (waited {settings.edit_timeout:.0f} s each)"
                    )
                    tally.log_tail = server.log_tail()
                    return
        if live:
            server.wait_ready(timeout=10.0)
            time.sleep(settings.warmup)
            extra.sse = live_sse(port, copy, settings)
            log(f"  {contender.name:14} SSE: {extra.sse['outcome']}")
            server.wait_ready(timeout=20.0)
            time.sleep(settings.warmup)
            extra.ws = live_ws(port, copy, settings)
            log(f"  {contender.name:14} WebSocket: {extra.ws['outcome']}")
    except RuntimeError as exc:
        tally.reloading = False
        tally.note = f"failed to serve: {str(exc).splitlines()[0]}"
        tally.log_tail = server.log_tail()
    finally:
        server.stop()
        tally.log_tail = tally.log_tail or server.log_tail(3)
        if not extra.reloader:
            try:
                found = _RELOADER_LINE.search(server.log_path.read_text(errors="replace"))
            except OSError:
                found = None
            extra.reloader = found.group(1) if found else ""


def describe(tally: Tally, extra: Extra, contender: Contender) -> dict[str, Any]:
    """save_to_serve's summary of the edits, with p90, the loop lag and the live checks."""
    row = summarize(tally)
    latencies = [r["latency_s"] * 1000 for r in tally.records if r["seen"]]
    row["p90_ms"] = round(percentile(latencies, 90), 2) if latencies else None
    lags = [r["loop_lag_ms"] for r in tally.records if r.get("loop_lag_ms") is not None]
    row["loop_lag_ms_median"] = round(sorted(lags)[len(lags) // 2], 2) if lags else None
    row["loop_lag_ms_max"] = round(max(lags), 2) if lags else None
    row["loop_lag_readings"] = len(lags)
    row["idle_lag_ms_max"] = round(max(extra.idle_lag_ms), 2) if extra.idle_lag_ms else None
    row["sse"] = extra.sse
    row["ws"] = extra.ws
    row["reloader"] = extra.reloader
    row["kind"] = contender.kind
    row["label"] = contender.label
    return row


def run(mode: str = "full", *, peers: Sequence[str] | None = None, dsn: str | None = None) -> dict[str, Any]:
    settings = SETTINGS[mode]
    chosen = list(peers) if peers else list(settings.peers)
    dsn = postgres_dsn() if dsn is None else dsn
    have_hotmod = hotmod_cli() is not None
    ours_contender = _HOTMOD_SERVE
    skipped: dict[str, str] = {}
    hmr_info = ""
    if HMR in chosen:
        hmr_bin, hmr_info = hmr_venv()
        if hmr_bin is None:
            skipped[HMR] = hmr_info
            chosen.remove(HMR)
    pairings: list[dict[str, Any]] = []
    with scratch_dir("asgi-save-to-serve") as scratch:
        for peer_name in chosen:
            peer = CONTENDERS[peer_name]
            log(f"asgi save-to-serve: {HOTMOD} vs {peer_name}, {settings.edits} edits each")
            ours, theirs = Tally(HOTMOD, []), Tally(peer_name, [])
            our_extra, their_extra = Extra(), Extra()
            our_copy = FastAPICopy.create(scratch, f"{peer_name}-hotmod")
            their_copy = FastAPICopy.create(scratch, f"{peer_name}-peer")
            rounds = -(-settings.edits // settings.per_round)
            for round_no in range(1, rounds + 1):
                if not theirs.reloading:
                    break
                batch = min(settings.per_round, settings.edits - (round_no - 1) * settings.per_round)
                if have_hotmod and ours.reloading:
                    run_batch(
                        ours_contender,
                        our_copy,
                        ours,
                        our_extra,
                        settings=settings,
                        edits=batch,
                        dsn=dsn,
                        round_no=round_no,
                        live=round_no == 1,
                    )
                run_batch(
                    peer,
                    their_copy,
                    theirs,
                    their_extra,
                    settings=settings,
                    edits=batch,
                    dsn=dsn,
                    round_no=round_no,
                    live=round_no == 1,
                )
            pairing: dict[str, Any] = {
                "peer": describe(theirs, their_extra, peer),
                "records": theirs.records + ours.records,
            }
            if have_hotmod:
                pairing["hotmod"] = describe(ours, our_extra, ours_contender)
                ours_median = pairing["hotmod"]["median_ms"]
                theirs_median = pairing["peer"]["median_ms"]
                pairing["ratio"] = (
                    round(theirs_median / ours_median, 1)
                    if ours_median and theirs_median and theirs.reloading and ours.reloading
                    else None
                )
            pairings.append(pairing)
        cost = app_cost(scratch, dsn, rounds={"smoke": 2, "quick": 5}.get(mode, 10))
    result: dict[str, Any] = {
        "mode": mode,
        "settings": settings.__dict__,
        "database": "postgresql" if dsn else "sqlite",
        "hotmod_available": have_hotmod,
        "hotmod_label": ours_contender.label,
        "pairings": pairings,
        "skipped": skipped,
        "uvicorn_hmr": hmr_info,
        "python": sys.version.split()[0],
        "app_cost": cost,
    }
    if have_hotmod and pairings:
        records = [r for p in pairings for r in p["records"] if r["server"] == HOTMOD]
        merged = Extra(idle_lag_ms=[x for p in pairings for x in _idle_of(p)])
        result["hotmod"] = describe(Tally(HOTMOD, records), merged, ours_contender)
        statuses = [p["hotmod"]["status"] for p in pairings if p["hotmod"]["status"] != "reloads"]
        result["hotmod"]["status"] = statuses[0] if statuses else "reloads"
        result["hotmod"]["log_tail"] = next(
            (p["hotmod"]["log_tail"] for p in pairings if p["hotmod"]["log_tail"]), ""
        )
        median = result["hotmod"]["median_ms"]
        if median is not None and cost.get("exec_ms") is not None:
            app_part = cost["exec_ms"] + cost["startup_ms"] + cost["first_request_ms"]
            cost["own_share_ms"] = round(median - app_part, 2)
    return result


def app_cost(scratch: Path, dsn: str, *, rounds: int) -> dict[str, Any]:
    """The app's own cost of the edit, in one fresh process (``apps/fastapiapp/cost.py``):
    executing the plan's modules, the new app's lifespan startup, its first request."""
    copy = FastAPICopy.create(scratch, "app-cost")
    log(f"asgi save-to-serve: the app's own cost of the same edit, in-process ({rounds} rounds)")
    try:
        out = subprocess.run(
            [sys.executable, "cost.py", str(rounds)],
            cwd=copy.root,
            env=copy.env(database_url=dsn, application_name="hotmod-bench-asgi-cost"),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    cost: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return cost


def _idle_of(pairing: dict[str, Any]) -> list[float]:
    value = pairing["hotmod"].get("idle_lag_ms_max")
    return [value] if value is not None else []


# --- the report ---------------------------------------------------------------------------------


def goals(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for issue 21's ASGI goals that this result measured."""
    rows: list[tuple[str, str, str]] = []
    if not result.get("hotmod_available") or not result["pairings"]:
        return rows

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    for pairing in result["pairings"]:
        peer, ours = pairing["peer"], pairing["hotmod"]
        if peer["server"] == "uvicorn" and pairing.get("ratio") is not None:
            rows.append(
                (
                    "ASGI save-to-serve median >= 50x faster than `uvicorn --reload`",
                    f"{pairing['ratio']}x ({fmt(ours['median_ms'])} ms against {fmt(peer['median_ms'])} ms)",
                    verdict(pairing["ratio"] >= 50),
                )
            )
    ours = result["hotmod"]
    rows.append(
        (
            "ASGI: zero failed requests during hotmod reloads",
            f"{ours['failed_requests']} failed over {ours['edits']} reloads",
            verdict(ours["edits"] > 0 and ours["failed_requests"] == 0),
        )
    )
    sse = [p["hotmod"]["sse"] for p in result["pairings"] if p["hotmod"].get("sse")]
    if sse:
        good = [
            s for s in sse if s.get("ended") and s.get("after_edit_new") == 0 and s.get("shown_while_open")
        ]
        rows.append(
            (
                "ASGI: an SSE stream opened before an edit runs to its end on the old code, "
                "the edit shows at once",
                f"{len(good)} of {len(sse)}: {sse[0]['outcome']}",
                verdict(len(good) == len(sse)),
            )
        )
    ws = [p["hotmod"]["ws"] for p in result["pairings"] if p["hotmod"].get("ws")]
    if ws:
        good = [w for w in ws if w.get("open_at_end") and w.get("after_edit_new") == 0 and w.get("latency_s")]
        rows.append(
            (
                "ASGI: a WebSocket opened before an edit stays on the old code, the edit shows at once",
                f"{len(good)} of {len(ws)}: {ws[0]['outcome']}",
                verdict(len(good) == len(ws)),
            )
        )
    return rows


def _live_cell(live: dict[str, Any] | None, latency: bool = True) -> str:
    if not live:
        return "-"
    text = str(live["outcome"])
    if latency and live.get("latency_s") is not None:
        text += f"; edit served in {live['latency_s'] * 1000:.0f} ms"
    if live.get("failed"):
        text += f"; {live['failed']} failed"
    return text


def render(result: dict[str, Any]) -> str:
    """The Markdown section for RESULTS.md."""
    s = result["settings"]
    stream_s = s["stream_events"] * s["stream_interval_ms"] / 1000
    lines = [
        "## Save-to-serve on ASGI (FastAPI)",
        "",
        f'FastAPI bench app (`bench/apps/fastapiapp`: the "Bigger Applications" layout, 42 routes, '
        f"pydantic schemas, a SQLAlchemy engine on {result['database']}, a lifespan, an SSE stream and a "
        f"WebSocket), one edit of `MARKER` in `app/routers/pages.py` at a time, alternating atomic rename "
        f"and in-place write; `GET /` over a fresh connection every 1 ms until the new text is served. "
        f"{s['edits']} edits per server per pairing in rounds of {s['per_round']} (hotmod, peer, hotmod, "
        f"peer, ...); failed requests as in the WSGI section (refused, reset, empty, timeout, 5xx, until "
        f"{s['after'] * 1000:.0f} ms after the new text appeared). Every server runs on this venv's "
        f"uvicorn with whatever it picks (uvloop and httptools are installed: fastapi-cli requires "
        f"`uvicorn[standard]`), `PYTHONDONTWRITEBYTECODE=1`.",
        "",
        f"Live connections, once per server in each pairing's first round: an SSE stream of "
        f"{s['stream_events']} events {s['stream_interval_ms']} ms apart ({stream_s:.1f} s) opened before "
        f"an edit, each event carrying the marker its code reads; and a WebSocket opened before an edit "
        f"that sends a message every 50 ms and keeps going {s['ws_after']:.1f} s after the edit showed. "
        f"Loop lag: the app's probe (a 1 ms `asyncio.sleep` in a loop, `app/lagprobe.py`) read before and "
        f"after each edit, its largest overshoot across the reload; `restart` where the process "
        f"changed (a restarted process has no loop during the restart); idle is the same reading over "
        f"0.5 s of the 1 ms poll with no edit.",
        "",
        "| server | served/edits | p50 ms | p90 ms | max ms | failed requests (reloads hit) "
        "| process restarts | loop lag ms: idle / edit p50 / edit max | peer/hotmod (p50) | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def lag(r: dict[str, Any]) -> str:
        if not r.get("loop_lag_readings"):
            return f"{fmt(r.get('idle_lag_ms_max'))} / restart / restart"
        return (
            f"{fmt(r.get('idle_lag_ms_max'))} / {fmt(r['loop_lag_ms_median'])} / {fmt(r['loop_lag_ms_max'])}"
        )

    def row(r: dict[str, Any], ratio: str) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["failure_kinds"].items()))
        failed = f"{r['failed_requests']} ({r['reloads_with_failures']})" + (f": {kinds}" if kinds else "")
        name = r["server"] + (f" ({r['reloader']})" if r.get("reloader") else "")
        return (
            f"| {name} | {r['served']}/{r['edits']} | {fmt(r['median_ms'])} | {fmt(r['p90_ms'])} "
            f"| {fmt(r['max_ms'])} | {failed} | {r['restarted_process']} | {lag(r)} | {ratio} "
            f"| {r['status']} |"
        )

    if result["hotmod_available"] and result.get("hotmod"):
        lines.append(row(result["hotmod"], "1.0" if result["hotmod"]["status"] == "reloads" else "-"))
    else:
        lines.append("| hotmod | - | - | - | - | - | - | - | - | pending: `hotmod serve` not available |")
    for pairing in result["pairings"]:
        ratio = pairing.get("ratio")
        lines.append(row(pairing["peer"], f"{ratio}x" if ratio else "-"))
    for name, why in result.get("skipped", {}).items():
        lines.append(f"| {name} | - | - | - | - | - | - | - | - | {why} |")
    cost = result.get("app_cost") or {}
    if cost.get("exec_ms") is not None:
        lines += [
            "",
            f"The app's own cost of the same edit, in one process with no reloader, watcher or socket "
            f"(`apps/fastapiapp/cost.py`, median of {cost['rounds']}): what any reloader that "
            f"re-executes the plan pays before the new text can be served.",
            "",
            "| part | median ms |",
            "|---|---|",
            f"| executing `app.routers.pages`, `app.routers.live`, `app.main` afresh (a new `FastAPI`) "
            f"| {fmt(cost['exec_ms'])} |",
            f"| the new app's lifespan startup | {fmt(cost['startup_ms'])} |",
            f"| its first request (`GET /`, plain ASGI call) | {fmt(cost['first_request_ms'])} |",
            f"| a steady request of the same app | {fmt(cost['steady_request_ms'])} |",
            f"| **hotmod's own share** (its p50 minus the first three: watcher, engine, server, "
            f"the 1 ms poll) | **{fmt(cost.get('own_share_ms'))}** |",
        ]
    elif cost.get("error"):
        lines += ["", f"The app's own cost could not be measured: {cost['error']}"]
    lines += [
        "",
        "What a connection opened before the edit saw (hotmod: its run in the same pairing):",
        "",
        "| server | SSE stream | WebSocket |",
        "|---|---|---|",
    ]
    for pairing in result["pairings"]:
        for r in (pairing.get("hotmod"), pairing["peer"]):
            if r is None:
                continue
            label = r["server"] if r["server"] != HOTMOD else f"hotmod (vs {pairing['peer']['server']})"
            lines.append(f"| {label} | {_live_cell(r.get('sse'))} | {_live_cell(r.get('ws'))} |")
    lines += ["", "Servers:", ""]
    names = [HOTMOD] if result["hotmod_available"] else []
    names += [p["peer"]["server"] for p in result["pairings"]]
    for name in names:
        contender = CONTENDERS.get(name)
        if contender is None:
            continue
        label = result.get("hotmod_label", contender.label) if name == HOTMOD else contender.label
        extra = ""
        if name == HMR and result.get("uvicorn_hmr"):
            extra = f" ({result['uvicorn_hmr']})"
        lines.append(f"- **{name}**: {label}{extra}")
    lines.append(
        "- The reloader named after uvicorn's and fastapi dev's rows is the one their log names "
        "(`Started reloader process [...] using WatchFiles` or `StatReload`)."
    )
    tails = [p["peer"] for p in result["pairings"] if p["peer"]["log_tail"]]
    if result.get("hotmod") and result["hotmod"].get("log_tail"):
        tails.insert(0, result["hotmod"])
    if tails:
        lines += ["", "Last log lines of servers that did not reload:", ""]
        for r in tails:
            lines += [f"- **{r['server']}**:", "", "```", r["log_tail"], "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser("python -m bench.asgi_save_to_serve")
    parser.add_argument("--peer", action="append", choices=(*PEERS, *OPTIONAL_PEERS))
    args = parser.parse_args(argv)
    result = run(mode_of(args), peers=args.peer)
    emit(result, render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
