"""Save-to-serve per framework: hotmod against the framework's own reloader, A B A B.

For each framework, an app in its standard layout (``bench/apps/frameworks/``) is
served twice from two private copies: by ``hotmod serve`` with no flags (A) and by
the framework's own reloading server (B): ``flask run --reload``, ``pserve
--reload``, ``manage.py runserver``, Bottle's ``run(reloader=True)``. Rounds
alternate A and B (a fresh server for each batch of edits), so both see the same
machine at the same time.

One edit: change the text a view returns (atomic rename and in-place write
alternate), then GET the view over a fresh connection every 1 ms until the new text
is served. Latency runs from the moment the edit landed to the end of that
response. Refused or reset connections, timeouts and 5xx answers on the way count
as failed requests, and so do those of a short window after the new text appeared
(where stale answers are counted too).

Run alone: ``python -m bench.frameworks [--quick|--smoke] [--framework NAME]...``
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    BENCH_DIR,
    REPO,
    VENV_BIN,
    Server,
    emit,
    fmt,
    free_port,
    hotmod_cli,
    leaf_pid,
    log,
    mode_of,
    poll_until,
    probe_window,
    save_edit,
    scratch_dir,
    section_parser,
    summary_ms,
)

APPS = BENCH_DIR / "apps" / "frameworks"
#: The same standard-layout apps the integration tests serve.
FIXTURES = REPO / "tests" / "fixtures" / "frameworks"
HOTMOD = "hotmod"


@dataclass(frozen=True)
class Framework:
    """One framework's app and how each contender serves it."""

    name: str
    url: str  # the view the edits change
    view: str  # its file, relative to the copy
    original: str  # the source fragment an edit replaces (it occurs once in the view)
    edited: str  # what replaces it, with {marker} for the text the page then shows
    hotmod_target: str
    peer: str  # the peer's name in the table
    peer_label: str
    peer_argv: Callable[[Path, int], list[str]] | None  # None: the framework has no reloader
    prepare: Callable[[Path], None]  # builds the app in an empty folder
    before_start: Callable[[Path, int], None] = lambda root, port: None
    key: str = ""  # the name on the command line, when one framework has two peers

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name)


def _copy(source: Path) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        shutil.copytree(source, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))

    return prepare


def _prepare_flask(root: Path) -> None:
    _copy(FIXTURES / "flask")(root)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flaskr", "init-db"],
        cwd=root, check=True, capture_output=True, timeout=60,
    )


def _prepare_django(root: Path) -> None:
    """``django-admin startproject`` + ``startapp``, then the tutorial's part 1 files, and
    ``polls`` installed (part 2)."""
    root.mkdir(parents=True, exist_ok=True)
    run = {"cwd": root, "check": True, "capture_output": True, "timeout": 60}
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", "."], **run)  # type: ignore[call-overload]
    subprocess.run([sys.executable, "manage.py", "startapp", "polls"], **run)  # type: ignore[call-overload]
    shutil.copy(APPS / "django" / "polls_views.py", root / "polls" / "views.py")
    shutil.copy(APPS / "django" / "polls_urls.py", root / "polls" / "urls.py")
    shutil.copy(APPS / "django" / "mysite_urls.py", root / "mysite" / "urls.py")
    # Installed, as the tutorial's part 2 does: Django imports its models at set-up.
    settings = root / "mysite" / "settings.py"
    text = settings.read_text()
    installed = "INSTALLED_APPS = [\n    'polls.apps.PollsConfig',"
    settings.write_text(text.replace("INSTALLED_APPS = [", installed, 1))


def _pyramid_port(root: Path, port: int) -> None:
    """pserve binds what ``[server:main]`` says: this run's free port."""
    ini = root / "development.ini"
    ini.write_text(re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", ini.read_text()))


_FLASK_STAT = (
    "import sys; from werkzeug.serving import run_simple; from flaskr import create_app; "
    "run_simple('127.0.0.1', int(sys.argv[1]), create_app(), use_reloader=True, reloader_type='stat')"
)

FRAMEWORKS: dict[str, Framework] = {
    f.key: f
    for f in (
        Framework(
            "flask", "/hello", "flaskr/__init__.py", "'Hello, World!'", "'{marker}'", "flaskr:create_app()",
            "flask run --reload",
            "`flask --app flaskr run --reload` (werkzeug's reloader, type auto)",
            lambda root, port: [
                str(VENV_BIN / "flask"), "--app", "flaskr", "run", "--reload",
                "--host", "127.0.0.1", "--port", str(port),
            ],
            _prepare_flask,
        ),
        Framework(
            "flask", "/hello", "flaskr/__init__.py", "'Hello, World!'", "'{marker}'", "flaskr:create_app()",
            "werkzeug stat reloader",
            "`run_simple(create_app(), use_reloader=True, reloader_type=\"stat\")`: what `flask run"
            " --reload` does without watchdog",
            lambda root, port: [sys.executable, "-c", _FLASK_STAT, str(port)],
            _prepare_flask,
            key="flask-stat",
        ),
        Framework(
            "Flask-SQLAlchemy", "/", "inventory/main/views.py", 'heading="Inventory"',
            'heading="{marker}"', "inventory:create_app()",
            "flask run --reload", "`flask --app inventory run --reload` (werkzeug's reloader, type auto)",
            lambda root, port: [
                str(VENV_BIN / "flask"), "--app", "inventory", "run", "--reload",
                "--host", "127.0.0.1", "--port", str(port),
            ],
            _copy(FIXTURES / "flask_sqla"),
            key="flask-sqlalchemy",
        ),
        Framework(
            "pyramid", "/", "myproject/views/default.py", "{'project': 'myproject'}",
            "{{'project': '{marker}'}}", "development.ini",
            "pserve --reload", "`pserve development.ini --reload` (hupper, waitress)",
            lambda root, port: [str(VENV_BIN / "pserve"), "development.ini", "--reload"],
            _copy(FIXTURES / "pyramid"),
            before_start=_pyramid_port,
        ),
        Framework(
            "django", "/polls/", "polls/views.py", '"Hello, world. You\'re at the polls index."',
            '"{marker}"', "mysite.wsgi:application",
            "manage.py runserver", "`python manage.py runserver` (StatReloader)",
            lambda root, port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            _prepare_django,
        ),
        Framework(
            "falcon", "/things", "things/resources.py", "'    ~ Immanuel Kant\\n\\n'",
            "'{marker}'", "things.app:app", "-", "none: Falcon has no reloader of its own", None,
            _copy(FIXTURES / "falcon"),
        ),
        Framework(
            "plain WSGI", "/", "plainapp/views.py", "'home page'", "'{marker}'",
            "plainapp.wsgi:application", "-", "none", None, _copy(FIXTURES / "plain"), key="plain",
        ),
        Framework(
            "bottle", "/hello", "app.py", '"Hello World!"', '"{marker}"', "app:app",
            "run(reloader=True)", "`python app.py`: `bottle.run(app, reloader=True)`",
            lambda root, port: [sys.executable, "app.py", str(port)],
            _copy(APPS / "bottle"),
        ),
    )
}


@dataclass(frozen=True)
class Settings:
    edits: int  # per contender
    per_round: int
    edit_timeout: float
    misses_allowed: int
    warmup: float  # seconds between "ready" and the first edit (the peers snapshot files)
    after: float
    frameworks: tuple[str, ...]


SETTINGS = {
    "full": Settings(20, 5, 8.0, 3, 1.5, 0.3, tuple(FRAMEWORKS)),
    "quick": Settings(4, 2, 6.0, 2, 1.5, 0.2, tuple(FRAMEWORKS)),
    "smoke": Settings(1, 1, 6.0, 1, 1.5, 0.1, ("pyramid",)),
}


class AppCopy:
    """A private copy of one framework's app; the only files a run edits."""

    def __init__(self, framework: Framework, root: Path) -> None:
        self.framework = framework
        self.root = root
        framework.prepare(root)
        self.view = root / framework.view
        self.source = self.view.read_text()
        if self.source.count(framework.original) != 1:
            raise RuntimeError(f"{self.view} must hold {framework.original!r} exactly once")
        self.edits = 0

    def edit(self, *, atomic: bool) -> bytes:
        """Change the view's text; returns what the page shows once reloaded."""
        self.edits += 1
        marker = f"bench-edit-{self.edits:05d}"
        text = self.source.replace(self.framework.original, self.framework.edited.format(marker=marker))
        save_edit(self.view, text, atomic=atomic)
        return marker.encode()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # A reloader's child markers must not leak into a fresh server's environment.
        for key in ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "BOTTLE_CHILD", "RUN_MAIN",
                    "HOTMOD_SERVER_FD"):
            env.pop(key, None)
        env.update(
            {
                "PYTHONPATH": str(self.root),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        return env


@dataclass
class Tally:
    name: str
    records: list[dict[str, Any]]
    reloading: bool = True
    misses: int = 0
    note: str = ""
    log_tail: str = ""


def run_batch(
    contender: str, argv: list[str], copy: AppCopy, tally: Tally, *, port: int, settings: Settings,
    edits: int, round_no: int,
) -> None:
    framework = copy.framework
    framework.before_start(copy.root, port)
    server = Server(
        name=f"{framework.name}-{contender}", argv=argv, cwd=copy.root, env=copy.env(), port=port,
        log_path=copy.root.parent / f"{copy.root.name}.log",
    )
    try:
        server.start()
        ready_s = server.wait_ready(framework.url, timeout=60.0)
        time.sleep(settings.warmup)
        for _ in range(edits):
            atomic = copy.edits % 2 == 0
            pid_before = leaf_pid(server.pid)
            needle = copy.edit(atomic=atomic)
            since = time.perf_counter()
            result = poll_until(port, needle, since=since, timeout=settings.edit_timeout, path=framework.url)
            after = probe_window_at(port, framework.url, needle, settings.after) if result.seen else {}
            record = {
                "server": contender,
                "round": round_no,
                "edit": copy.edits,
                "how": "rename" if atomic else "in-place",
                "seen": result.seen,
                "latency_s": result.latency_s if result.seen else None,
                "errors": result.errors,
                "after": after,
                "failed": result.failed + sum(v for k, v in after.items() if k != "stale"),
                "stale_after": after.get("stale", 0),
                "restarted": leaf_pid(server.pid) != pid_before,
                "ready_s": ready_s,
            }
            tally.records.append(record)
            shown = f"{result.latency_s * 1000:.1f} ms" if result.seen else "MISSED"
            log(f"  {framework.name:8} {contender:20} edit {copy.edits:3} {shown:>10}"
                f" failed={record['failed']}")
            tally.misses = 0 if result.seen else tally.misses + 1
            if tally.misses >= settings.misses_allowed:
                tally.reloading = False
                tally.note = f"not reloading: missed {tally.misses} edits in a row"
                tally.log_tail = server.log_tail()
                return
    except RuntimeError as exc:
        tally.reloading = False
        tally.note = f"failed to serve: {str(exc).splitlines()[0]}"
        tally.log_tail = server.log_tail()
    finally:
        server.stop()


def probe_window_at(port: int, path: str, needle: bytes, seconds: float) -> dict[str, int]:
    if path == "/":
        return probe_window(port, needle, seconds=seconds)
    # probe_window asks for "/": the same window on the edited view's own path.
    from bench import _harness

    counts: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        status, body, error = _harness.http_get(port, path, timeout=1.0)
        kind = error or (f"http {status}" if status is not None and status >= 500 else "")
        if not kind and status == 200 and needle not in body:
            kind = "stale"
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
        time.sleep(0.005)
    return counts


def summarize(tally: Tally) -> dict[str, Any]:
    seen = [r for r in tally.records if r["seen"]]
    kinds: dict[str, int] = {}
    for r in tally.records:
        for source in (r["errors"], r["after"]):
            for kind, n in source.items():
                if kind != "stale":
                    kinds[kind] = kinds.get(kind, 0) + n
    return {
        "server": tally.name,
        "edits": len(tally.records),
        "served": len(seen),
        **summary_ms([r["latency_s"] for r in seen]),
        "failed_requests": sum(r["failed"] for r in tally.records),
        "failure_kinds": kinds,
        "stale_after": sum(r["stale_after"] for r in tally.records),
        "restarted_process": sum(1 for r in seen if r["restarted"]),
        "status": "reloads" if tally.reloading and len(seen) == len(tally.records) else (
            tally.note or f"missed {len(tally.records) - len(seen)} of {len(tally.records)} edits"
        ),
        "log_tail": tally.log_tail if not tally.reloading else "",
    }


def run(mode: str = "full", *, frameworks: Sequence[str] | None = None) -> dict[str, Any]:
    settings = SETTINGS[mode]
    if hotmod_cli() is None:
        raise RuntimeError("`hotmod serve` is not installed: run `make install`")
    chosen = tuple(frameworks) if frameworks else settings.frameworks
    rows: list[dict[str, Any]] = []
    with scratch_dir("frameworks") as scratch:
        for key in chosen:
            framework = FRAMEWORKS[key]
            name = framework.key
            log(f"frameworks: {name}: hotmod vs {framework.peer}, {settings.edits} edits each")
            ours, theirs = Tally(HOTMOD, []), Tally(framework.peer, [])
            our_copy = AppCopy(framework, scratch / f"{name}-hotmod")
            their_copy = AppCopy(framework, scratch / f"{name}-peer")
            rounds = -(-settings.edits // settings.per_round)
            for round_no in range(1, rounds + 1):
                batch = min(settings.per_round, settings.edits - (round_no - 1) * settings.per_round)
                if ours.reloading:
                    port = free_port()
                    argv = [str(VENV_BIN / "hotmod"), "serve", framework.hotmod_target, "--port", str(port)]
                    run_batch(HOTMOD, argv, our_copy, ours, port=port, settings=settings, edits=batch,
                              round_no=round_no)
                if theirs.reloading and framework.peer_argv is not None:
                    port = free_port()
                    run_batch(framework.peer, framework.peer_argv(their_copy.root, port), their_copy, theirs,
                              port=port, settings=settings, edits=batch, round_no=round_no)
            row = {
                "framework": framework.name,
                "peer_label": framework.peer_label,
                "hotmod": summarize(ours),
                "peer": summarize(theirs) if framework.peer_argv is not None else None,
                "records": ours.records + theirs.records,
            }
            a, b = row["hotmod"]["median_ms"], (row["peer"] or {}).get("median_ms")
            row["ratio"] = round(b / a, 1) if a and b else None
            rows.append(row)
    return {"mode": mode, "settings": settings.__dict__, "rows": rows}


#: How the peers reload (read from their code); it explains the table.
PEER_NOTES = (
    "How the peers reload (read from their code):",
    "",
    "- `flask run --reload`: werkzeug's reloader with type `auto`, the watchdog one whenever "
    "watchdog is installed (a hotmod dependency); it watches every `sys.path` folder recursively, "
    "and on this machine the inotify queue overflows and no edit is seen (as in the Save-to-serve "
    "section). The stat row is what it does without watchdog: a scan every second, then a new "
    "serving child; the parent keeps the socket, so requests wait instead of failing.",
    "- `pserve --reload`: hupper restarts the waitress worker after a change, waiting out its "
    "1 s reload interval; the new worker binds the port again, so requests in between are refused.",
    "- `manage.py runserver`: the StatReloader scans every second, then the parent starts a new "
    "child that binds the port again (refused requests). *Same process* compares the newest pid "
    "of the server's process group before the edit and once the new text is served: a heuristic "
    "that can miss a restart.",
    "- Bottle's `run(reloader=True)`: the child's file checker scans every second and stops the "
    "server once, with `interrupt_main()`; when that KeyboardInterrupt lands while wsgiref is "
    "writing a response (the probe keeps one in flight), wsgiref's error handling swallows it, "
    "and the child keeps serving the old code without ever restarting (log tail below).",
    "- hotmod: one process throughout; Django and Bottle through their framework support "
    "(docs/frameworks.md).",
)


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "## Save-to-serve per framework",
        "",
        f"Each framework's app in its standard layout (`bench/apps/frameworks/README.md`), served "
        f"by `hotmod serve TARGET` with no flags and by the framework's own reloading server, "
        f"{s['edits']} edits each in rounds of {s['per_round']} (hotmod, peer, hotmod, peer, "
        f"...; a fresh server per round). One edit changes the text a view returns (atomic "
        f"rename and in-place write alternate); the view is then fetched over a fresh "
        f"connection every 1 ms until the new text is served. Latency: from the edit landing "
        f"to the end of that response. Failed requests: refused or reset connections, "
        f"timeouts and 5xx, from the edit until {s['after'] * 1000:.0f} ms after the new "
        f"text appeared. First edit {s['warmup']:.1f} s after the server answers (the peers "
        f"snapshot the files once a second). A server that misses {s['misses_allowed']} "
        f"edits in a row ({s['edit_timeout']:.0f} s each) is recorded as not reloading. Falcon "
        f"and plain WSGI have no reloader of their own: hotmod alone.",
        "",
        "| framework | server | served/edits | median ms | p95 ms | max ms | failed requests "
        "| same process | peer/hotmod (median) | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        for key in ("hotmod", "peer"):
            r = row[key]
            if r is None:
                continue
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["failure_kinds"].items()))
            failed = f"{r['failed_requests']}" + (f": {kinds}" if kinds else "")
            same = f"{r['served'] - r['restarted_process']}/{r['served']}"
            label = "`hotmod serve` (no flags)" if key == "hotmod" else row["peer_label"]
            ratio = "1.0" if key == "hotmod" else (f"{row['ratio']}x" if row["ratio"] else "-")
            lines.append(
                f"| {row['framework']} | {label} | {r['served']}/{r['edits']} | {fmt(r['median_ms'])} "
                f"| {fmt(r['p95_ms'])} | {fmt(r['max_ms'])} | {failed} | {same} | {ratio} | {r['status']} |"
            )
    lines += ["", *PEER_NOTES]
    tails = [
        (row["framework"], row[key])
        for row in result["rows"]
        for key in ("hotmod", "peer")
        if row[key] and row[key]["log_tail"]
    ]
    if tails:
        lines += ["", "Last log lines of servers that did not reload:", ""]
        for framework, r in tails:
            lines += [f"- **{framework}, {r['server']}**:", "", "```", r["log_tail"], "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser("python -m bench.frameworks")
    parser.add_argument("--framework", action="append", choices=list(FRAMEWORKS))
    args = parser.parse_args(argv)
    mode = mode_of(args)
    result = run(mode, frameworks=args.framework)
    emit(result, render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
