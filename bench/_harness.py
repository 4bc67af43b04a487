"""What every benchmark shares: servers in their own process groups, probes over
fresh loopback connections, edits of the copied app, /proc readings, statistics.

Nothing here waits without a bound, and nothing here touches a process group the
suite did not start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FLASK_APP = BENCH_DIR / "apps" / "flaskapp"
FASTAPI_APP = BENCH_DIR / "apps" / "fastapiapp"
VENV_BIN = Path(sys.executable).parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

MODES = ("smoke", "quick", "full")


class Pending(Exception):
    """A section that cannot run yet because a part it measures has not landed."""


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Median, p95 and max in milliseconds (None when there is nothing to summarise)."""
    if not seconds:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# --- ports, processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server the suite started, alone in its own process group."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_file: Any = None

    def start(self) -> None:
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"server {self.name!r} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, path: str = "/admin/health", timeout: float = 30.0) -> float:
        """Seconds until ``path`` answers 200; raises ``RuntimeError`` with the log tail."""
        started = time.perf_counter()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            status, _, _ = http_get(self.port, path, timeout=2.0)
            if status == 200:
                return time.perf_counter() - started
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the whole group, SIGKILL what is left after ``timeout``."""
        if self.proc is not None:
            kill_group(self.proc, timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 6) -> str:
        """The last distinct log lines, leaving out per-request access lines."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept: list[str] = []
        for line in reversed(text.strip().splitlines()):
            line = _ANSI.sub("", line).rstrip()
            if not line or _ACCESS_LINE.search(line) or line in kept:
                continue
            kept.append(line)
            if len(kept) == lines:
                break
        return "\n".join(reversed(kept))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ACCESS_LINE = re.compile(r'"(GET|POST|HEAD) /')


def kill_group(proc: subprocess.Popen[Any], *, timeout: float = 5.0) -> None:
    """Stop a process we started with ``start_new_session=True`` and its group."""
    pgid = proc.pid  # the leader of a new session: its pid is the group id
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_pids(pgid):
                return
            time.sleep(0.02)
    proc.wait(timeout=5)


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read_stat(int(entry))
        if stat is not None and stat[2] == pgid and stat[0] != "Z":
            pids.append(int(entry))
    return pids


def _read_stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, pgrp, utime, stime) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[11]), int(fields[12])


_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes of a group."""
    total = 0
    for pid in group_pids(pgid):
        stat = _read_stat(pid)
        if stat is not None:
            total += stat[3] + stat[4]
    return total / _TICKS


def process_cpu_seconds(pid: int) -> float:
    stat = _read_stat(pid)
    return 0.0 if stat is None else (stat[3] + stat[4]) / _TICKS


def proc_status(pid: int) -> dict[str, int]:
    """RSS (KiB), threads and open descriptors of one process."""
    out = {"rss_kib": 0, "threads": 0, "fds": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def leaf_pid(pgid: int) -> int:
    """The newest process of a group (the serving child of a reloader parent), by
    start time: pids wrap (at 32768 here), so the newest is not always the largest."""
    started: list[tuple[int, int]] = []
    for pid in group_pids(pgid):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        started.append((int(raw[raw.rindex(")") + 2 :].split()[19]), pid))
    return max(started)[1] if started else pgid


# --- HTTP over fresh connections -----------------------------------------------------------

_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _expected_size(raw: bytes) -> int:
    """Header + body size when Content-Length is given, else "read until EOF" (a huge size).

    A browser shows a page once its body has arrived, not when the server closes the
    connection, and werkzeug's dev server holds every connection ~10 ms after the
    response (it drains the socket with ``select(timeout=0.01)`` before closing).
    """
    head, _, _ = raw.partition(b"\r\n\r\n")
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return 1 << 62
    return len(head) + 4 + int(match.group(1))


def http_get(port: int, path: str = "/", *, timeout: float = 2.0) -> tuple[int | None, bytes, str]:
    """One GET over a new connection: (status or None, body, error kind or "").

    The answer is complete when Content-Length bytes of body arrived (else at EOF).
    """
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            raw = b""
            expected = -1  # total bytes once the headers tell Content-Length
            while expected < 0 or len(raw) < expected:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
                if expected < 0 and b"\r\n\r\n" in raw:
                    expected = _expected_size(raw)
    except ConnectionRefusedError:
        return None, b"", "refused"
    except (ConnectionResetError, BrokenPipeError):
        return None, b"", "reset"
    except TimeoutError:
        return None, b"", "timeout"
    except OSError as exc:
        return None, b"", type(exc).__name__
    match = _STATUS.match(raw)
    if match is None:
        return None, raw, "empty" if not raw else "garbled"
    _, _, body = raw.partition(b"\r\n\r\n")
    return int(match.group(1)), body, ""


@dataclass
class PollResult:
    seen: bool
    latency_s: float
    probes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    request_s: float = 0.0  # how long the request that showed the new text took

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def poll_until(
    port: int,
    needle: bytes,
    *,
    since: float,
    timeout: float,
    interval: float = 0.001,
    path: str = "/",
    status: int = 200,
) -> PollResult:
    """Poll ``path`` every ``interval`` until an answer with ``status`` (200 unless
    told) holds ``needle`` in its body.

    Latency counts from ``since`` (a ``time.perf_counter()`` reading taken right
    after the edit landed) to the end of the response that showed the new text.
    Refused or reset connections, timeouts and 5xx answers (but the one awaited)
    are counted as failures.
    """
    result = PollResult(seen=False, latency_s=0.0)
    deadline = since + timeout
    while True:
        started = time.perf_counter()
        if started > deadline:
            result.latency_s = started - since
            return result
        code, body, error = http_get(port, path, timeout=min(2.0, max(0.05, deadline - started)))
        result.probes += 1
        if code == status and needle in body:
            result.seen = True
            ended = time.perf_counter()
            result.latency_s = ended - since
            result.request_s = ended - started
            return result
        if error:
            result.errors[error] = result.errors.get(error, 0) + 1
        elif code is not None and code >= 500:
            result.errors[f"http {code}"] = result.errors.get(f"http {code}", 0) + 1
        pause = interval - (time.perf_counter() - started)
        if pause > 0:
            time.sleep(pause)


def probe_window(port: int, needle: bytes, *, seconds: float, interval: float = 0.005) -> dict[str, int]:
    """Keep probing for ``seconds`` after a reload: count failures and stale answers."""
    counts: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        status, body, error = http_get(port, "/", timeout=1.0)
        if error:
            kind = error
        elif status is not None and status >= 500:
            kind = f"http {status}"
        elif status == 200 and needle not in body:
            kind = "stale"
        else:
            kind = ""
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
        time.sleep(interval)
    return counts


# --- the copied app and its edits ----------------------------------------------------------

MARKER_LINE = re.compile(r'^MARKER = "[^"]*"$', re.MULTILINE)


def save_edit(path: Path, text: str, *, atomic: bool) -> None:
    """Save ``text`` as an editor would: written to a temporary file and renamed over
    ``path`` (atomic), or truncated and written in place."""
    if atomic:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        with open(path, "w") as f:
            f.write(text)


@dataclass
class AppCopy:
    """A private copy of bench/apps/flaskapp in a tmp dir: the only files a run edits."""

    root: Path
    view: Path
    original: str
    open_log: Path
    edits: int = 0

    @classmethod
    def create(cls, parent: Path, name: str) -> AppCopy:
        root = parent / name
        shutil.copytree(FLASK_APP, root, ignore=shutil.ignore_patterns("__pycache__", "var"))
        view = root / "app" / "views" / "pages.py"
        original = view.read_text()
        if not MARKER_LINE.search(original):
            raise RuntimeError(f"{view} has no MARKER line to edit")
        return cls(root=root, view=view, original=original, open_log=root / "db-opens.log")

    def marker(self, n: int) -> str:
        return f"bench-edit-{n:05d}"

    def edit(self, *, atomic: bool) -> bytes:
        """Change the view's MARKER; returns the text the page will show once reloaded."""
        self.edits += 1
        marker = self.marker(self.edits)
        save_edit(self.view, MARKER_LINE.sub(f'MARKER = "{marker}"', self.original), atomic=atomic)
        return marker.encode()

    def db_opens(self) -> int:
        try:
            return self.open_log.stat().st_size
        except FileNotFoundError:
            return 0

    def env(self, *, database_url: str, application_name: str) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "DATABASE_URL"):
            env.pop(key, None)
        env.update(
            {
                "PYTHONPATH": str(self.root),
                # Same for every server: a .pyc written for an earlier edit within the same
                # second and of the same size would otherwise be loaded instead of the source.
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "BENCH_DB_OPEN_LOG": str(self.open_log),
                "BENCH_DATA_DIR": str(self.root / "var"),
                "BENCH_APPLICATION_NAME": application_name,
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        if database_url:
            env["DATABASE_URL"] = database_url
        return env


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"hotmod-bench-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("HOTMOD_BENCH_KEEP"):
            log(f"kept {path} (HOTMOD_BENCH_KEEP is set)")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_dsn() -> str:
    """The DSN the suite uses when a server answers on it, else "" (``--sqlite`` forces "")."""
    if os.environ.get("HOTMOD_BENCH_DB") == "sqlite":
        return ""
    dsn = os.environ.get("HOTMOD_BENCH_DSN") or os.environ.get("HOTMOD_TEST_DSN") or DEFAULT_DSN
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # any failure to connect means: run on SQLite, and say why
        log(f"PostgreSQL not reachable at {dsn} ({type(exc).__name__}); using SQLite")
        return ""
    return dsn


def pg_backends(dsn: str, application_name: str) -> int | None:
    """Live backends whose application_name is ours (None without PostgreSQL)."""
    if not dsn:
        return None
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


# --- the machine -----------------------------------------------------------------------------

PACKAGES = (
    "hotmod",
    "werkzeug",
    "flask",
    "watchdog",
    "hupper",
    "gunicorn",
    "waitress",
    "psycopg",
    "psycopg-pool",
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "loadavg": loadavg(),
        "git": _git_head(),
    }


def loadavg() -> str:
    """The 1/5/15-minute load averages: the machine is shared, so say how busy it was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def hotmod_cli() -> Path | None:
    """The ``hotmod`` console script of this venv, if the middleware has landed."""
    script = VENV_BIN / "hotmod"
    if not script.exists():
        return None
    try:
        import hotmod.middleware.cli  # noqa: F401
    except ImportError:
        return None
    return script


def emit(result: dict[str, Any], render: Callable[[dict[str, Any]], str], json_path: Path | None) -> None:
    """A section run alone: its Markdown on stdout, its result as JSON where asked."""
    print(render(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2, default=str))


def section_parser(prog: str) -> argparse.ArgumentParser:
    """The options of a section run alone: ``--quick``, ``--smoke``, ``--json PATH``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    return parser


def mode_of(args: argparse.Namespace) -> str:
    return "smoke" if args.smoke else "quick" if args.quick else "full"
