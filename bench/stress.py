"""Long reliability runs (issue 7): ``python -m bench.stress [--quick] [--only CASE]...``.

Each case serves a real application through :class:`middleware.HotReload` with
werkzeug's threaded server on 127.0.0.1, in this process, while its files are
rewritten, and prints one row of a table: the case, how many iterations (edits,
saves, reloads) it ran, the failures it saw (each kind counted apart) and the
resources of the process at the start and at the end: open file descriptors,
threads, resident memory and PostgreSQL backends of the case's own
``application_name``.

Cases:

``load``     8 client threads for 60 s while 300 edits land at random intervals, a
             fifth of them broken (syntax error, exception at import, import of a
             missing name) or faulty in ways the hook contract accepts (a raising
             clone hook, a raising purge hook, a deleted module nothing imports).
             Production mode. Failures: non-200, a body mixing two generations, a
             body from an edit that must fail, backends above the pool size.
``inplace``  a module whose psycopg pool is carried by clone hooks, saved in place
             300 times (truncate, then the file written in two halves), while the
             watcher runs and 4 threads request. Failures: a generation whose pool
             module has no hooks (a half-written file became current), backends
             above the pool size, non-200.
``inplace-rapid``  the same with saves 0-40 ms apart.
``stream``   one response streaming for 60 s across 5 reloads. Failures: a chunk
             from another generation, the old generation not retired after the end.

The functions are also what ``tests/integration/test_reliability.py`` runs, with
shorter settings, and asserts on. The PostgreSQL server is ``HOTMOD_TEST_DSN``
(default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import module_source, serving, wait_until

from bench import _harness

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
POOL_SIZE = 3


# -- resources ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    fds: int
    threads: int
    rss_kb: int
    backends: int | None

    def __str__(self) -> str:
        backends = "-" if self.backends is None else str(self.backends)
        return f"{self.fds} fds, {self.threads} thr, {self.rss_kb // 1024} MiB, {backends} pg"


def pg_backends(dsn: str | None, application_name: str) -> int | None:
    return _harness.pg_backends(dsn or "", application_name)


def measure(dsn: str | None = None, application_name: str = "") -> Resources:
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Resources(
        fds=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        rss_kb=rss,
        backends=pg_backends(dsn, application_name),
    )


@dataclass
class Row:
    case: str
    iterations: int
    failures: Counter[str]
    start: Resources
    end: Resources
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def table(rows: list[Row]) -> str:
    lines = [
        "| case | iterations | failures seen | resources at start | resources at end | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        failures = ", ".join(f"{k} {v}" for k, v in sorted(row.failures.items()) if v) or "0"
        notes = ", ".join(f"{k} {v}" for k, v in row.notes.items())
        lines.append(
            f"| {row.case} | {row.iterations} | {failures} | {row.start} | {row.end} | {notes} |"
        )
    return "\n".join(lines)


# -- serving --------------------------------------------------------------------------


class _Keep(logging.Handler):
    """Keeps the first few error records of werkzeug's server (the app's tracebacks)."""

    def __init__(self, limit: int = 3) -> None:
        super().__init__(logging.ERROR)
        self.limit = limit
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < self.limit:
            self.messages.append(record.getMessage()[-1500:])


SERVER_ERRORS = _Keep()
logging.getLogger("werkzeug").addHandler(SERVER_ERRORS)


def get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


WRITER = """
import json, sys, time
for line in sys.stdin:
    job = json.loads(line)
    data = job["text"].encode()
    half = data.index(b"# -- hooks")
    with open(job["path"], "r+b") as f:
        f.truncate(0)
        f.flush()
        time.sleep(job["pause"])
        f.write(data[:half])
        f.flush()
        time.sleep(job["pause"])
        f.write(data[half:])
    print("ok", flush=True)
"""


class Editor:
    """An editor in a process of its own that saves files in place, so that its
    truncate-then-write timing does not depend on this process's threads (the GIL)."""

    def __init__(self) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, start_new_session=True,
        )

    def save(self, path: Path, text: str, *, pause: float) -> None:
        import json

        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"path": str(path), "text": text, "pause": pause}) + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "ok":
            raise RuntimeError("the editor process failed")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except Exception:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class ThreadEditor:
    """The same saves from a thread of this process: between its truncate and its write
    it may wait for the GIL for many milliseconds, as a writer on a loaded machine may
    be descheduled; that makes a slow in-place save likely rather than rare."""

    def save(self, path: Path, text: str, *, pause: float) -> None:
        data = text.encode()
        half = data.index(b"# -- hooks")
        with open(path, "r+b") as f:
            f.truncate(0)
            f.flush()
            time.sleep(pause)
            f.write(data[:half])
            f.flush()
            time.sleep(pause)
            f.write(data[half:])

    def close(self) -> None:
        pass


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` so that the stat signature changes even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


@contextlib.contextmanager
def project(workdir: Path | None, prefix: str) -> Iterator[tuple[Path, str]]:
    """A fresh watched root with a package of a unique name, first on sys.path."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    package = f"{prefix}{uuid.uuid4().hex[:8]}"
    (base / package).mkdir()
    (base / package / "__init__.py").write_text("")
    sys.path.insert(0, str(base))
    try:
        yield base / package, package
    finally:
        sys.path[:] = [p for p in sys.path if p != str(base)]
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        shutil.rmtree(base, ignore_errors=True)


def db_source(dsn: str, application_name: str, version: int, *, hooks: bool = True) -> str:
    """A module whose pool crosses reloads through ``__mp_clone__`` (without hooks:
    the file up to its hooks line, which the in-place editor cuts saves at)."""
    text = module_source(
        "pool_db", VERSION=version, DSN=dsn, APPLICATION_NAME=application_name, POOL_SIZE=POOL_SIZE
    )
    return text if hooks else text[: text.index("\n", text.index("# -- hooks")) + 1]


class Sampler:
    """Counts the case's PostgreSQL backends every ``interval`` seconds on a thread."""

    def __init__(self, dsn: str | None, application_name: str, interval: float = 0.05) -> None:
        self.dsn = dsn
        self.name = application_name
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def _run(self) -> None:
        if self.dsn is None:
            return
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=3, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                row = conn.execute(
                    "select count(*) from pg_stat_activity where application_name = %s",
                    (self.name,),
                ).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def settle(app: Any, timeout: float = 15.0) -> bool:
    """Wait until no generation is draining and the janitor is idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not app.status()["draining"] and app.reloader.wait_idle(1.0):
            return True
        time.sleep(0.05)
    return False


# -- case: load + reloads ---------------------------------------------------------------

def load_app(version: str, *, spare: bool = False) -> str:
    """The load case's app at ``version``; with ``spare``, it imports ``spare`` too
    (an import statement: the edge a deletion of spare.py must cut)."""
    text = module_source("load_app", VERSION=version)
    return text.replace("from . import db, part\n", "from . import db, part, spare\n") if spare else text


PART = """\
{broken}VERSION = {version!r}
{hooks}
"""

PART_HOOKS = {
    "good": "def __mp_clone__(new):\n    new.CARRIED = True\n\ndef __mp_purge__():\n    pass\n",
    "clone_raises": "def __mp_clone__(new):\n    raise RuntimeError('clone refused')\n",
    "purge_raises": "def __mp_purge__():\n    raise RuntimeError('purge refused')\n",
}

BROKEN = {
    "syntax": "def broken(:\n",
    "raise": "VERSION = 'bad-raise'\nraise RuntimeError('boom at import')\n",
    "missing": "VERSION = 'bad-missing'\nfrom os import no_such_name_hm\n",
}


def load_and_reloads(
    *,
    seconds: float = 60.0,
    edits: int = 300,
    threads: int = 8,
    dsn: str | None = None,
    workdir: Path | None = None,
    seed: int = 7,
) -> Row:
    """The ``load`` case (see the module docstring)."""
    from hotmod.middleware import HotReload

    rng = random.Random(seed)
    SERVER_ERRORS.messages.clear()
    app_name = f"hotmod_stress_{uuid.uuid4().hex[:8]}"
    failures: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    with project(workdir, "hmload") as (root, package):
        dsn = dsn or os.environ.get("HOTMOD_TEST_DSN", DEFAULT_DSN)
        (root / "db.py").write_text(db_source(dsn, app_name, 0))
        (root / "part.py").write_text(PART.format(broken="", version="p0", hooks=PART_HOOKS["good"]))
        (root / "app.py").write_text(load_app("a0"))
        app = HotReload(f"{package}.app:app", watch=root)
        try:
            with serving(app) as port:
                assert get(port)[0] == 200
                start = measure(dsn, app_name)
                stop = threading.Event()
                served = Counter[str]()
                errors: list[str] = []
                lock = threading.Lock()

                def client() -> None:
                    while not stop.is_set():
                        status, body = get(port)
                        text = body.decode("utf-8", "replace")
                        with lock:
                            served["requests"] += 1
                            if status != 200:
                                failures[f"status {status or 'no answer'}"] += 1
                                if len(errors) < 5:
                                    errors.append(text[-300:])
                            elif "bad" in text:
                                failures["from a failed edit"] += 1
                            else:
                                parts = text.split("|")
                                if len(parts) != 3 or parts[1] != parts[2]:
                                    failures["mixed generations"] += 1

                workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
                with Sampler(dsn, app_name) as sampler:
                    for worker in workers:
                        worker.start()
                    spare = False
                    deadline = time.monotonic() + seconds
                    for i in range(1, edits + 1):
                        kind = edit_for_load(rng, root, i, spare)
                        kinds[kind] += 1
                        if kind == "spare added":
                            spare = True
                        elif kind == "spare deleted":
                            spare = False
                        left = max(0.0, deadline - time.monotonic())
                        time.sleep(rng.uniform(0, 2 * left / max(1, edits - i + 1)))
                    # A last good edit everywhere, so the run ends on known code.
                    replace_file(root / "part.py", PART.format(
                        broken="", version="p-final", hooks=PART_HOOKS["good"]))
                    wait_until(lambda: b"p-final" in get(port)[1], timeout=30, what="the final edit")
                    stop.set()
                    for worker in workers:
                        worker.join(30)
                if sampler.peak > POOL_SIZE:
                    failures["backends above pool size"] += 1
                if not settle(app):
                    failures["generation never drained"] += 1
                app.reloader.wait_idle(5)
                time.sleep(app.reloader.leak_check_delay + 0.2)
                app.reloader.wait_idle(5)
                end = measure(dsn, app_name)
                status = app.status()
                stats = app.reloader.stats()
                if status["leaked"]:
                    failures["leaked generations"] += len(status["leaked"])

                notes = {
                    "requests": served["requests"],
                    "generations": stats["generation"],
                    "failed plans": stats["failures"],
                    "clone errors": stats["clone_errors"],
                    "purge errors": stats["purge_errors"],
                    "peak backends": sampler.peak,
                    "edits": dict(sorted(kinds.items())),
                }
                if errors:
                    notes["first errors"] = SERVER_ERRORS.messages or errors
                if status["leaked"]:
                    notes["leaked"] = sorted({str(leak["referrers"]) for leak in status["leaked"]})
        finally:
            app.close()
    return Row("load + reloads", edits, failures, start, end, notes)


def edit_for_load(rng: random.Random, root: Path, i: int, spare: bool) -> str:
    """One edit of the load case; returns its kind."""
    roll = rng.random()
    if roll < 0.2:  # a fifth broken or faulty
        kind = rng.choice(["syntax", "raise", "missing", "clone_raises", "purge_raises", "spare"])
        if kind in BROKEN:
            replace_file(root / "part.py", PART.format(
                broken=BROKEN[kind], version=f"bad-{i}", hooks=""))
            return f"broken: {kind}"
        if kind == "spare":
            if spare:
                replace_file(root / "app.py", load_app(f"a{i}"))
                time.sleep(0.3)  # the importer's edit first, then the deletion
                (root / "spare.py").unlink()
                return "spare deleted"
            (root / "spare.py").write_text("import time\nSTARTED = time.time()\n")
            replace_file(root / "app.py", load_app(f"a{i}", spare=True))
            return "spare added"
        replace_file(root / "part.py", PART.format(broken="", version=f"p{i}", hooks=PART_HOOKS[kind]))
        return f"faulty: {kind}"
    target = rng.choice(["part", "part", "app"])
    if target == "part":
        replace_file(root / "part.py", PART.format(broken="", version=f"p{i}", hooks=PART_HOOKS["good"]))
    else:
        replace_file(root / "app.py", load_app(f"a{i}", spare=spare))
    return "good"


# -- case: in-place saves ---------------------------------------------------------------

INPLACE_APP = """\
from . import db

def app(environ, start_response):
    with db.pool.connection() as conn:
        conn.execute("select 1")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(db.VERSION).encode()]
"""


def inplace_saves(
    *,
    saves: int = 300,
    threads: int = 4,
    dsn: str | None = None,
    workdir: Path | None = None,
    pause: float = 0.005,
    gap: tuple[float, float] = (0.1, 0.2),
    seed: int = 11,
    until_failure: bool = False,
    editor: str = "process",
) -> Row:
    """The ``inplace`` case (see the module docstring)."""
    from hotmod.middleware import HotReload

    rng = random.Random(seed)
    app_name = f"hotmod_inplace_{uuid.uuid4().hex[:8]}"
    failures: Counter[str] = Counter()
    dsn = dsn or os.environ.get("HOTMOD_TEST_DSN", DEFAULT_DSN)
    with project(workdir, "hminpl") as (root, package):
        (root / "db.py").write_text(db_source(dsn, app_name, 0))
        (root / "app.py").write_text(INPLACE_APP)
        app = HotReload(f"{package}.app:app", watch=root)
        without_hooks: list[int] = []

        def on_event(event: Any) -> None:
            if event.kind == "reloaded":
                module = app.reloader.current.modules.get(f"{package}.db")
                if module is not None and not hasattr(module, "__mp_clone__"):
                    without_hooks.append(event.generation)

        unsubscribe = app.reloader.subscribe(on_event)
        try:
            with serving(app) as port:
                assert get(port)[0] == 200
                start = measure(dsn, app_name)
                stop = threading.Event()
                count = Counter[str]()

                def client() -> None:
                    while not stop.is_set():
                        status, _ = get(port)
                        count["requests"] += 1
                        if status != 200:
                            failures["non-200"] += 1

                workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
                writer: Editor | ThreadEditor = Editor() if editor == "process" else ThreadEditor()
                with Sampler(dsn, app_name) as sampler:
                    for worker in workers:
                        worker.start()
                    done = 0
                    for i in range(1, saves + 1):
                        writer.save(root / "db.py", db_source(dsn, app_name, i), pause=pause)
                        done = i
                        time.sleep(rng.uniform(*gap))
                        if until_failure and (without_hooks or failures):
                            break
                    writer.close()
                    wait_until(lambda: get(port)[1] == str(done).encode(), timeout=30, what="the last save")
                    stop.set()
                    for worker in workers:
                        worker.join(30)
                if sampler.peak > POOL_SIZE:
                    failures["backends above pool size"] += 1
                if without_hooks:
                    failures["a half-written file became current"] += len(without_hooks)
                settle(app)
                end = measure(dsn, app_name)
                stats = app.reloader.stats()
                notes = {
                    "requests": count["requests"],
                    "generations": stats["generation"],
                    "failed plans": stats["failures"],
                    "peak backends": sampler.peak,
                }
        finally:
            unsubscribe()
            app.close()
    label = f"in-place saves {gap[0] * 1000:.0f}-{gap[1] * 1000:.0f} ms apart"
    return Row(label, done, failures, start, end, notes)


# -- case: a long stream across reloads ----------------------------------------------------

def long_stream(*, seconds: float = 60.0, reloads: int = 5, workdir: Path | None = None) -> Row:
    """The ``stream`` case (see the module docstring)."""
    import http.client

    from hotmod.middleware import HotReload

    failures: Counter[str] = Counter()
    with project(workdir, "hmstrm") as (root, package):
        marker = root.parent / "purged.txt"
        marker.write_text("")
        # The tests' streaming app: it keeps purged.txt beside its package.
        (root / "app.py").write_text(module_source("stream_app", VERSION="v0"))
        app = HotReload(f"{package}.app:app", watch=root, scan_interval=3600)
        try:
            with serving(app) as port:
                start = measure()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 30)
                conn.request("GET", f"/stream?{seconds}")
                response = conn.getresponse()
                first = response.readline()
                for i in range(1, reloads + 1):
                    time.sleep(seconds / (reloads + 1))
                    replace_file(root / "app.py", module_source("stream_app", VERSION=f"v{i}"))
                    app.reload()
                    if get(port, "/")[1] != f"v{i}".encode():
                        failures["new request not on the new code"] += 1
                rest = response.read().splitlines()
                conn.close()
                chunks = [first.strip(), *rest]
                failures["chunks from another generation"] += sum(c != b"v0" for c in chunks)
                try:
                    wait_until(lambda: "v0" in marker.read_text().split(), timeout=10, what="v0 purged")
                except AssertionError:
                    failures["old generation not retired"] += 1
                settle(app)
                end = measure()
                notes = {"chunks": len(chunks), "generations": app.generation}
        finally:
            app.close()
    return Row(f"{seconds:.0f} s stream across reloads", reloads, failures, start, end, notes)


# -- runner -------------------------------------------------------------------------------

CASES: dict[str, Callable[[bool], Row]] = {
    "load": lambda quick: load_and_reloads(seconds=10 if quick else 60, edits=60 if quick else 300),
    "inplace": lambda quick: inplace_saves(saves=60 if quick else 300),
    "inplace-rapid": lambda quick: inplace_saves(saves=60 if quick else 300, gap=(0.0, 0.04)),
    "stream": lambda quick: long_stream(seconds=10 if quick else 60),
}


#: One case with settings of the caller's (``--case NAME --set KEY=VALUE``): what the
#: test suite runs, in a process of its own, with shorter settings.
CASE_FUNCTIONS: dict[str, Callable[..., Row]] = {
    "load": load_and_reloads,
    "inplace": inplace_saves,
    "stream": long_stream,
}


def as_json(row: Row) -> dict[str, Any]:
    """``row`` as plain data, with its table and the pool's size."""
    return {
        "case": row.case,
        "iterations": row.iterations,
        "failures": {kind: n for kind, n in row.failures.items() if n},
        "start": dataclasses.asdict(row.start),
        "end": dataclasses.asdict(row.end),
        "notes": row.notes,
        "pool_size": POOL_SIZE,
        "table": table([row]),
    }


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string (a DSN, a path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stress", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short versions (about 40 s)")
    parser.add_argument("--only", action="append", choices=sorted(CASES), default=[])
    parser.add_argument("--case", choices=sorted(CASE_FUNCTIONS),
                        help="run one case with the settings of --set instead")
    parser.add_argument("--set", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                        help="a keyword argument of the case's function (a Python literal or a string)")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # failed plans are expected, and counted
    if args.case is not None:
        runs: list[tuple[str, Callable[[], Row]]] = [
            (args.case, lambda: CASE_FUNCTIONS[args.case](**dict(args.set)))
        ]
    else:
        runs = [(name, lambda name=name: CASES[name](args.quick)) for name in args.only or list(CASES)]
    rows = []
    for name, run in runs:
        began = time.monotonic()
        print(f"running {name}...", file=sys.stderr, flush=True)
        row = run()
        row.notes["seconds"] = round(time.monotonic() - began, 1)
        rows.append(row)
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([as_json(row) for row in rows], indent=2, default=str))
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
