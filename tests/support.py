"""What the test modules and the bench share (one module, as STYLE.md asks),
beside the fixtures of ``conftest.py``. The bench imports it from here (its
``_harness`` puts this folder on ``sys.path``); the tests never import the bench.

- waits: ``wait_until`` (a bounded poll); ``free_port``;
- module versions: ``module_source`` (a file of ``tests/fixtures/modules/`` with
  some of its top-level constants set), so that every version of a module is a
  Python file, not a string with doubled braces;
- files: ``write`` (dedented, its stat signature always changed), ``replace``,
  ``copy_fixture`` (a private copy of an app under ``tests/fixtures/frameworks/``);
- HTTP: ``call`` (any method, a ``Reply``), ``get`` (status and text);
- servers: ``serving`` (a WSGI app on a werkzeug thread of this process), ``Served``
  (a server command in a subprocess of its own process group, its output collected
  line by line), ``hotmod_serving`` (``hotmod serve TARGET`` on a free port, stopped
  afterwards), ``Hammer`` (a client thread that counts failed requests),
  ``quiet_start`` and ``twenty_edits`` (what every framework test checks);
- ``open_descriptors``: how many file descriptors a process holds;
- the demo: ``demo_copy`` (a private copy of ``demo_app/``, importable while it
  lasts), ``serve_demo``/``demo_starter`` (behind HotReload on a werkzeug thread) and
  ``DemoServer`` (what the tests ask of it), ``status_or_none``.
"""

from __future__ import annotations

import ast
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import IO, Any, NamedTuple, TypeVar

from werkzeug.serving import WSGIRequestHandler, make_server

from hotmod.middleware import GENERATION_HEADER, HotReload

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
FRAMEWORK_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "frameworks"
DEMO_SOURCE = Path(__file__).resolve().parent.parent / "demo_app"
DEMO_TARGET = "demo_app.wsgi:app"
#: ``python -m hotmod``: the command ``Served`` runs unless told another.
HOTMOD = (sys.executable, "-m", "hotmod")

#: How long after start-up the tests watch for a reload that no edit caused.
QUIET_START = 1.5
#: Bound of every wait for an edit to be served.
EDIT_TIMEOUT = 15.0


#: Module sources the tests and the bench load in versions (see ``module_source``).
MODULE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "modules"


# -- waits ---------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.005, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- module versions -----------------------------------------------------------------------


def module_source(name: str, **constants: Any) -> str:
    """The text of ``tests/fixtures/modules/{name}.py`` with each top-level constant
    named in ``constants`` (``VERSION="v2"``) set to that value's ``repr``: one file
    per module, its versions told apart by the constants it declares for it."""
    text = (MODULE_FIXTURES / f"{name}.py").read_text()
    for constant, value in constants.items():
        text, found = re.subn(rf"^{constant} = .*$", f"{constant} = {value!r}", text, count=1, flags=re.M)
        if not found:
            raise KeyError(f"{name}.py declares no top-level constant {constant}")
    return text


# -- files ---------------------------------------------------------------------------------


def _store(path: Path, text: str) -> None:
    """Write ``text`` and make sure the stat signature changes, even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


def write(path: Path, text: str) -> None:
    """Write ``text`` dedented, creating the folders; the watcher always sees the change."""
    _store(path, textwrap.dedent(text))


def replace(path: Path, old: str, new: str) -> None:
    """Edit ``path``: ``old`` (which must occur) becomes ``new``, the rest kept to the byte."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    _store(path, text.replace(old, new))


def copy_fixture(name: str, parent: Path) -> Path:
    """A copy of ``tests/fixtures/frameworks/<name>`` (the fixture is never edited)."""
    dest = parent / name
    shutil.copytree(FRAMEWORK_FIXTURES / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def open_descriptors(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- HTTP ----------------------------------------------------------------------------------


class Reply(NamedTuple):
    """An answer read to its end; a tuple so that ``status, body, headers = call(...)``."""

    status: int
    body: bytes
    headers: Message

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def generation(self) -> int:
        return int(self.headers[GENERATION_HEADER])


def call(
    port: int,
    method: str,
    path: str,
    payload: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request to 127.0.0.1:``port`` on a fresh connection (redirects are not
    followed), with ``payload`` sent as JSON when given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = None if payload is None else json.dumps(payload)
        sent = {**({} if payload is None else {"Content-Type": "application/json"}), **(headers or {})}
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return Reply(response.status, response.read(), response.headers)
    finally:
        conn.close()


def get(port: int, path: str = "/") -> tuple[int, str]:
    reply = call(port, "GET", path)
    return reply.status, reply.text


# -- servers -------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """No line per request."""


@contextmanager
def serving(app: Callable[..., Any], port: int = 0) -> Iterator[int]:
    """``app`` on a threaded werkzeug server of this process at 127.0.0.1:``port`` (a
    free one when 0); yields the port."""
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-server")
    thread.start()
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


class Served:
    """``command`` + ``args`` run in ``cwd`` (``hotmod`` unless told another) as a
    subprocess in a process group of its own, so that ``kill`` takes whatever it
    started too; its stdout and stderr are collected line by line. ``port`` is where
    it answers, for ``get`` and the calls built on it."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        command: Sequence[str] = HOTMOD,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port
        #: What a fixture saw in its first seconds (``quiet_start``), when it looked.
        self.start_state: tuple[int, str] = (0, "")
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid = self.process.pid
        # The readers append, the tests read; `_printed` (its lock) guards the three
        # lists and is notified at every line and at the end of each stream.
        self._printed = threading.Condition()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        #: Both streams, in the order they were read, without line ends.
        self.lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._printed:
                lines.append(line)
                self.lines.append(line.rstrip("\n"))
                self._printed.notify_all()
        with self._printed:
            self._printed.notify_all()

    # -- what it printed

    def out(self) -> str:
        with self._printed:
            return "".join(self.stdout)

    def err(self) -> str:
        with self._printed:
            return "".join(self.stderr)

    def output(self) -> str:
        """Everything it printed, both streams."""
        with self._printed:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Where the lines printed from now on begin (``after=`` of ``wait_for``)."""
        with self._printed:
            return len(self.lines)

    def hotmod_lines(self, after: int = 0) -> list[str]:
        with self._printed:
            return [line for line in self.lines[after:] if line.startswith("hotmod:")]

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> str:
        """The first printed line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)

        def matching_line() -> str | None:
            return next((line for line in self.lines[after:] if regex.search(line)), None)

        return self._wait(matching_line, f"a line matching {pattern!r}", timeout)

    def wait_output(self, predicate: Callable[[str], bool], what: str, timeout: float = 30.0) -> None:
        """Wait until ``predicate`` holds of everything printed on stdout."""
        self._wait(lambda: True if predicate(self.out()) else None, what, timeout)

    def _wait(self, found: Callable[[], T | None], what: str, timeout: float) -> T:
        deadline = time.monotonic() + timeout
        with self._printed:
            while True:
                result = found()
                if result is not None:
                    return result
                if self.process.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(
                        f"the server exited ({self.process.returncode}) before {what}:\n{self.output()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; output:\n{self.output()}")
                self._printed.wait(min(left, 0.2))

    # -- what it answers

    def get(self, path: str = "/") -> tuple[int, str]:
        assert self.port is not None, "Served(port=...) names where it answers"
        return get(self.port, path)

    def status(self) -> dict[str, Any]:
        """The status endpoint's JSON (debug mode)."""
        code, body = self.get("/__hotmod__")
        assert code == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def wait_served(self, path: str, needle: str, *, status: int = 200) -> str:
        """Poll ``path`` until it answers ``status`` with ``needle`` in the body; the body."""

        def served() -> str | None:
            code, body = self.get(path)
            return body if code == status and needle in body else None

        try:
            return wait_until(
                served, timeout=EDIT_TIMEOUT, interval=0.02, what=f"{path} to answer {status} with {needle!r}"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; output:\n{self.output()}") from None
        except OSError as exc:  # a refused or reset request is a failure: say what the server said
            raise AssertionError(f"{path}: {exc!r}; output:\n{self.output()}") from exc

    def settle(self) -> dict[str, Any]:
        """Wait until no generation drains any more and every retired instance has
        had its leak check (a second after the latest retirement); the status then."""

        def settled() -> dict[str, Any] | None:
            status = self.status()
            return status if not status["draining"] and not status["leak_checks_pending"] else None

        return wait_until(settled, timeout=EDIT_TIMEOUT, what="drained generations and their leak checks")

    def descriptors(self) -> int:
        return open_descriptors(self.pid)

    # -- its end

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` and return the exit status, waited for at most ``timeout`` s;
        whatever is left of the process group is killed either way."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole process group, then wait (bounded) for the process and
        the end of its output."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for reader in self._readers:
            reader.join(5)


@contextmanager
def hotmod_serving(target: str, cwd: Path, *, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """``hotmod serve TARGET`` in ``cwd`` with no flag but a free port, once it serves;
    stopped afterwards, its whole process group with it."""
    port = free_port()
    server = Served(["serve", target, "--port", str(port)], cwd, env=env, port=port)
    try:
        server.wait_for(rf"^hotmod: serving .* on http://127\.0\.0\.1:{port}/", timeout=60)
        yield server
    finally:
        server.stop()


class Hammer:
    """A client thread that requests ``path`` in a loop on fresh connections and
    counts the requests that failed (refused, reset, or not 200)."""

    def __init__(self, served: Served, path: str) -> None:
        self.served, self.path = served, path
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hammer", daemon=True)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.served.get(self.path)
            except OSError as error:
                self.failures.append(repr(error))
                continue
            if status == 200:
                self.ok += 1
            else:
                self.failures.append(f"{status}: {body[:200]}")


def pid_of(body: str) -> int:
    """The process id a fixture app ends its body with (``... pid=N``)."""
    return int(body.rsplit("pid=", 1)[1])


def quiet_start(server: Served) -> tuple[int, str]:
    """The generation and the output after ``QUIET_START`` seconds with no edit (a
    reload now would be one that nothing caused)."""
    time.sleep(QUIET_START)  # the absence of a reload can only be watched for a while
    return server.status()["generation"], server.out()


def twenty_edits(server: Served, path: Path, url: str, text: Callable[[int], tuple[str, str]]) -> None:
    """Edit ``path`` 20 times, each edit served at ``url`` before the next, then back:
    ``text(n)`` is (the source, the text served) of the n-th version, ``text(0)`` the
    original. Then no generation may leak, and the server's descriptors must come back
    to their number after the first edit (connections still closing may take a moment)."""
    first = 0
    for n in [*range(1, 21), 0]:
        source, served = text(n)
        replace(path, text(n - 1 if n else 20)[0], source)
        server.wait_served(url, served)
        if n == 1:
            first = server.descriptors()
    status = server.settle()
    assert status["leaked"] == []
    assert "leak" not in server.err()
    wait_until(lambda: server.descriptors() <= first, timeout=5.0, what=f"descriptors back to {first}")
    assert server.process.poll() is None  # still serving
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted (execv keeps the pid)


# -- the stress cases --------------------------------------------------------------------------


def run_stress(case: str, workdir: Path, *, timeout: float, **settings: Any) -> dict[str, Any]:
    """One case of ``python -m bench.stress`` (``--case CASE --set KEY=VALUE...``), run as
    the program it is in a process of its own: the tests never import the bench. Its
    row as plain data (``failures``, ``start``/``end`` resources, ``notes``,
    ``pool_size``, ``table``)."""
    out = workdir / f"stress-{case}.json"
    argv = [sys.executable, "-m", "bench.stress", "--case", case, "--json", str(out),
            "--set", f"workdir={str(workdir)!r}"]
    argv += [arg for key, value in settings.items() for arg in ("--set", f"{key}={value!r}")]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.exists(), f"bench.stress wrote no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows[0]


# -- the demo ------------------------------------------------------------------------------


def without_functions(source: str, *names: str) -> str:
    """``source`` with the module-level functions ``names`` taken out."""
    tree = ast.parse(source)
    kept = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name in names)]
    assert len(tree.body) - len(kept) == len(names), f"not all of {names} are defined"
    tree.body = kept
    return ast.unparse(tree)


def demo_modules() -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in sys.modules.items()
        if name == "demo_app" or name.startswith("demo_app.")
    }


@contextmanager
def demo_copy(project: Path) -> Iterator[Path]:
    """A copy of ``demo_app/`` in the watched root ``project``, importable as
    ``demo_app`` while it lasts (the repository's own is never edited)."""
    shutil.copytree(DEMO_SOURCE, project / "demo_app", ignore=shutil.ignore_patterns("__pycache__"))
    saved = demo_modules()
    for name in saved:
        del sys.modules[name]
    try:
        yield project
    finally:
        for name in demo_modules():
            del sys.modules[name]
        sys.modules.update(saved)


def status_or_none(port: int) -> dict[str, Any] | None:
    """The demo's ``/api/status``, or None while nothing answers on ``port``."""
    try:
        reply = call(port, "GET", "/api/status")
    except OSError:
        return None
    return reply.json() if reply.status == 200 else None


def serve_demo(
    stack: ExitStack, root: Path, port: int, remove_from_db: tuple[str, ...] = ()
) -> HotReload:
    """Serve the demo copy in ``root`` behind HotReload (debug mode) on ``port``, with
    the module-level functions ``remove_from_db`` taken out of its db.py first.
    No watcher thread (the scan interval is far away): the test drives every reload.
    Both are stopped when ``stack`` closes."""
    db_py = root / "demo_app" / "db.py"
    if remove_from_db:
        db_py.write_text(without_functions(db_py.read_text(), *remove_from_db))
    hot = HotReload(DEMO_TARGET, watch=[root], debug=True, scan_interval=3600.0)
    stack.callback(hot.close)
    stack.enter_context(serving(hot, port))
    return hot


@dataclass
class DemoServer:
    """The demo copy in ``root`` served on ``port`` by ``hot``, and what tests ask of
    it; every GET that did not answer 200 is kept in ``failures``."""

    root: Path
    port: int
    hot: HotReload
    failures: list[str] = field(default_factory=list)

    @property
    def var(self) -> Path:
        return self.root / "var"

    def get(self, path: str) -> Reply:
        reply = call(self.port, "GET", path)
        if reply.status != 200:
            self.failures.append(f"GET {path}: {reply.status} {reply.body[:300]!r}")
        return reply

    def status(self) -> dict[str, Any]:
        reply = self.get("/api/status")
        assert reply.status == 200, reply.body
        data: dict[str, Any] = reply.json()
        return data

    def add(self, body: str) -> dict[str, Any]:
        """Add a note; the note as the demo answers it (its ``id`` among the fields)."""
        reply = call(self.port, "POST", "/api/notes", {"body": body})
        assert reply.status == 201, reply.body
        data: dict[str, Any] = reply.json()
        return data

    def module(self, name: str) -> ModuleType:
        """The current generation's instance of ``demo_app.<name>``."""
        return self.hot.reloader.current.modules[f"demo_app.{name}"]

    def reload(self, name: str) -> int:
        number: int = self.hot.reloader.reload(paths=[self.root / "demo_app" / f"{name}.py"])
        return number


@contextmanager
def demo_starter(root: Path, port: int) -> Iterator[Callable[..., DemoServer]]:
    """``start(remove_from_db=...)`` serves the demo copy in ``root`` on ``port`` (see
    ``serve_demo``); what it started stops on exit."""
    with ExitStack() as stack:

        def start(*, remove_from_db: tuple[str, ...] = ()) -> DemoServer:
            return DemoServer(root, port, serve_demo(stack, root, port, remove_from_db))

        yield start


def child_report(pid: int, read_end: int, write_end: int) -> list[str]:
    """The words a forked child wrote to the pipe before it exited. Waits a bounded
    time for both; a child still running afterwards is killed, and the pipe closed."""
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready, "the child reported nothing in 30 s"
        report = os.read(read_end, 4096).decode().split()
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        pid = 0
        return report
    finally:
        os.close(read_end)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


@contextmanager
def counting_refusals(port: int) -> Iterator[list[str]]:
    """A client that connects in a loop while the block runs; the errors it met
    (a refused or reset connection: the socket was not kept)."""
    errors: list[str] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                get(port, "/")
            except OSError as exc:
                errors.append(repr(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(30)


def django_project(
    folder: Path, app: str, fixture: Path, *, installed: Sequence[str] = (), settings: str = ""
) -> Path:
    """A Django project as its scaffolding makes it (``django-admin startproject mysite``,
    ``manage.py startapp APP``), the fixture's files of ``APP`` copied over it, ``APP``
    (after ``installed``) added to ``INSTALLED_APPS``, ``settings`` appended to the
    settings module, and ``APP.urls`` included by name under ``APP/``."""
    run = {"cwd": folder, "check": True, "capture_output": True, "timeout": 60}
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite"], **run)  # type: ignore[call-overload]
    project = folder / "mysite"
    subprocess.run([sys.executable, "manage.py", "startapp", app], **{**run, "cwd": project})  # type: ignore[call-overload]
    shutil.copytree(fixture / app, project / app, dirs_exist_ok=True)
    settings_py = project / "mysite" / "settings.py"
    apps = "".join(f"\n    '{name}'," for name in (*installed, app))
    replace(settings_py, "INSTALLED_APPS = [", f"INSTALLED_APPS = [{apps}")
    if settings:
        settings_py.write_text(settings_py.read_text() + settings)
    urls = project / "mysite" / "urls.py"
    replace(urls, "from django.urls import path", "from django.urls import include, path")
    admin_route = "path('admin/', admin.site.urls),"
    replace(urls, admin_route, f"{admin_route}\n    path('{app}/', include('{app}.urls')),")
    return project


# -- ASGI ----------------------------------------------------------------------------------

ASGI_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asgi"
BIN = Path(sys.executable).parent

#: The ASGI servers that serve ``HotReload`` as middleware: the command, given the
#: app (``module:attribute``) and the port.
ASGI_SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "uvicorn": lambda app, port: [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)],
    "hypercorn": lambda app, port: [str(BIN / "hypercorn"), app, "--bind", f"127.0.0.1:{port}"],
}


def copy_asgi_fixture(name: str, parent: Path) -> Path:
    """A copy of ``tests/fixtures/asgi/<name>`` (the fixture is never edited)."""
    dest = parent / name
    shutil.copytree(ASGI_FIXTURES / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def answering(port: int, path: str = "/") -> bool:
    """Whether anything answers ``path`` on ``port`` (any status: a server is up)."""
    try:
        call(port, "GET", path, timeout=5.0)
    except OSError:
        return False
    return True


@contextmanager
def asgi_middleware_serving(
    server: str,
    target: str,
    root: Path,
    entry: Path,
    *,
    debug: bool = True,
    server_args: Sequence[str] = (),
    **options: Any,
) -> Iterator[Served]:
    """``HotReload(target, debug=debug, log=True, **options)`` as the ASGI app of
    ``server`` (a name of ``ASGI_SERVERS``), run as ``SERVER hot_entry:hot
    *server_args`` on a free port: the entry module is written in ``entry``, outside
    the watched root, and ``root`` (the folder of the target's package) is on its
    ``PYTHONPATH``. Yields once it answers; stopped afterwards, its whole process
    group with it."""
    more = "".join(f", {name}={value!r}" for name, value in options.items())
    write(entry / "hot_entry.py", f"""\
        from hotmod import HotReload

        hot = HotReload({target!r}, debug={debug!r}, log=True{more})
        """)
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(entry), str(root)])}
    command = [*ASGI_SERVERS[server]("hot_entry:hot", port), *server_args]
    served = Served([], entry, command=command, env=env, port=port)
    try:
        wait_until(lambda: answering(port) or served.process.poll() is not None, timeout=60,
                   what=f"{server} to answer on port {port}")
        assert served.process.poll() is None, f"{server} exited:\n{served.output()}"
        yield served
    finally:
        served.stop(signal.SIGINT)


def lifespan_events(log: Path) -> list[tuple[str, str]]:
    """What a fixture app's lifespan recorded: (``startup``/``shutdown``, app instance)
    in the order it happened."""
    if not log.exists():
        return []
    return [(event, instance) for event, instance in (line.split() for line in log.read_text().splitlines())]


def app_instance(body: str) -> str:
    """The app instance a fixture's answer names (``... app=ID pid=N``)."""
    return body.split("app=", 1)[1].split()[0]


def check_lifespans(log: Path, current: str) -> dict[str, list[str]]:
    """Each app's lifespan events by instance, checked: every app started once, before
    anything else of its own; each app but ``current`` (which still serves) has shut
    down once, after its start; ``current`` has not shut down."""
    by_app: dict[str, list[str]] = {}
    for event, instance in lifespan_events(log):
        by_app.setdefault(instance, []).append(event)
    for instance, events in by_app.items():
        expected = ["startup"] if instance == current else ["startup", "shutdown"]
        assert events == expected, f"app {instance}: {events} (all: {by_app})"
    assert current in by_app, f"the serving app {current} never started: {by_app}"
    return by_app


def wait_lifespans(log: Path, current: str) -> dict[str, list[str]]:
    """``check_lifespans``, asked until it holds: a drained app's shutdown runs as its
    generation retires, a moment after the drain."""
    failure: list[str] = []

    def holds() -> dict[str, list[str]] | None:
        try:
            return check_lifespans(log, current)
        except AssertionError as exc:
            failure[:] = [str(exc)]
            return None

    try:
        return wait_until(holds, timeout=EDIT_TIMEOUT, interval=0.02, what="the lifespans")
    except AssertionError:
        raise AssertionError(failure[0] if failure else "no lifespan recorded") from None


def drained(server: Served) -> dict[str, Any]:
    """Wait until no generation drains any more (not for the leak checks, as
    ``Served.settle`` does, which take a second or two); the status then."""

    def done() -> dict[str, Any] | None:
        status = server.status()
        return status if not status["draining"] else None

    return wait_until(done, timeout=EDIT_TIMEOUT, interval=0.02, what="no generation draining")


@contextmanager
def event_stream(port: int, path: str, *, timeout: float = 30.0) -> Iterator[Iterator[str]]:
    """An open Server-Sent Events response of ``path``: yields an iterator over the
    ``data:`` values of its events, read as they arrive (each read bounded by
    ``timeout``); the connection is closed afterwards."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
        with client.stream("GET", path) as response:
            assert response.status_code == 200, response.read()

            def data() -> Iterator[str]:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield line.removeprefix("data: ")

            yield data()


# -- PostgreSQL backends ------------------------------------------------------------------


class Backends:
    """Counts the backends of one ``application_name`` in ``pg_stat_activity``, from a
    connection of its own (named otherwise, so never counted)."""

    def __init__(self, dsn: str, application_name: str) -> None:
        import psycopg

        self.application_name = application_name
        self._conn = psycopg.connect(dsn, autocommit=True, application_name="hotmod-test-observer")
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "select count(*) from pg_stat_activity where application_name = %s",
                (self.application_name,),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def terminate(self) -> None:
        with self._lock:
            self._conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
                (self.application_name,),
            )

    def close(self) -> None:
        self._conn.close()


class Sampler:
    """Samples the backend count on a thread of its own for as long as the block runs."""

    def __init__(self, dsn: str, application_name: str) -> None:
        self._backends = Backends(dsn, application_name)
        self._stop = threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, name="backend-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._backends.count())
            self._stop.wait(0.005)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._backends.close()
