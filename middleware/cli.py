"""``hotmod serve``: a development server that reloads changed modules in place.

It serves a WSGI target with werkzeug's threaded server and an ASGI target with
uvicorn (the ``hotmod[asgi]`` extra); neither's own process reloader runs: hotmod
reloads modules inside this process. It prints one line per reload or failure.
Bad input ends with one line on stderr and a non-zero exit, never a traceback.

``hotmod check``: read modules, without running them, for clone and purge hook
mistakes; one ``file:line: message`` per warning, exit status 1 when it warns.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from .. import __version__
from ..reloader import HotmodError, LoadFailure, ReloadError, ReloadEvent, TargetError
from ._app import HotReload
from ._guard import HostCheck
from ._paste import is_ini_target, load_ini_target

#: Seconds that in-flight requests get to finish at shutdown before purge hooks run.
SHUTDOWN_DRAIN = 3.0
#: Seconds that in-flight requests get to finish before a restart re-executes us.
RESTART_DRAIN = 3.0
#: Environment variable through which a restarted ``hotmod serve`` receives the
#: listening socket of the process it replaces (as werkzeug's WERKZEUG_SERVER_FD).
SERVER_FD = "HOTMOD_SERVER_FD"
#: Environment variable through which a restarted ``hotmod serve`` receives the
#: watched roots of the process it replaces (framework support may have added some):
#: should its target fail to load, it still watches every file an edit may fix.
RESTART_ROOTS = "HOTMOD_RESTART_ROOTS"

DEFAULT_PORT = 8000

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """Bad input: reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (the value and what is accepted), not
    a usage block: the same shape as every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hotmod: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hotmod",
        description="Serve a WSGI application and reload its changed modules in place.",
    )
    parser.add_argument("--version", action="version", version=f"hotmod {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve TARGET with werkzeug's threaded server, reloading on every edit",
        description="Serve TARGET ('package.module:app', 'package.module:factory()' or a "
        "PasteDeploy file 'development.ini[#name]') and reload changed modules into a new "
        "generation without restarting the process.",
    )
    serve.add_argument(
        "target",
        metavar="TARGET",
        help="'package.module:app', 'package.module:factory()' or 'development.ini[#name]'",
    )
    serve.add_argument(
        "--watch",
        metavar="DIR",
        action="append",
        default=[],
        help="a watched root (repeatable); default: the folder of the target's top-level package",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port to bind, 1-65535, or 0 for any free port (default: {DEFAULT_PORT}, or the port of"
        " an .ini target's [server:main])",
    )
    serve.add_argument(
        "--allow-host",
        metavar="NAME",
        action="append",
        default=[],
        help="a host name that may see the debug pages besides localhost, 127.0.0.1 and [::1]"
        " (repeatable; .NAME with its subdomains)",
    )
    serve.add_argument(
        "--poll",
        action="store_true",
        help="poll files instead of native events (HOTMOD_WATCHER=inotify|watchdog|polling names one)",
    )
    serve.add_argument(
        "--production",
        action="store_true",
        help="no error page, no /__hotmod__, no X-Hotmod-Generation header",
    )
    serve.add_argument(
        "--exclude",
        metavar="GLOB",
        action="append",
        default=[],
        help="files never reloaded (repeatable)",
    )
    serve.add_argument(
        "--extra",
        metavar="GLOB",
        action="append",
        default=[],
        help="non-Python files whose change reloads (repeatable)",
    )
    serve.add_argument(
        "--drain-warning",
        metavar="SECONDS",
        type=_seconds,
        default=60.0,
        help="warn once a superseded generation has drained this long (default: 60)",
    )
    serve.add_argument(
        "--drain-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=None,
        help="retire a generation still draining after this long and run its purge hooks"
        " (default: wait for its last request)",
    )
    serve.add_argument(
        "--interface",
        choices=("auto", "wsgi", "asgi"),
        default="auto",
        help="what the target is (default: auto, told from the loaded object): a WSGI app is"
        " served by werkzeug, an ASGI app by uvicorn (pip install 'hotmod[asgi]')",
    )
    live = serve.add_mutually_exclusive_group()
    live.add_argument(
        "--live-reload",
        choices=("morph", "reload", "off"),
        default="morph",
        help="open pages follow each generation by themselves (debug mode, allowed hosts):"
        " morph patches the page in place, keeping scroll and typed values (default);"
        " reload reloads it whole; off adds nothing to any response",
    )
    live.add_argument(
        "--no-live-reload",
        dest="live_reload",
        action="store_const",
        const="off",
        help="the same as --live-reload off",
    )
    talk = serve.add_mutually_exclusive_group()
    talk.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the serving line, failures, warnings and errors",
    )
    talk.add_argument(
        "--verbose", "-v", action="store_true", help="also print the engine's own log (hooks, drains)"
    )
    _add_check_command(commands)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number (1-65535, or 0 for any free port)"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535, or 0 for any free port)")
    return value


def _add_check_command(commands: argparse._SubParsersAction[_Parser]) -> None:
    checker = commands.add_parser(
        "check",
        help="read modules for clone and purge hook mistakes, without running them",
        description="Read each module (folders are walked recursively) and warn, with file"
        " and line, where module-level code creates a resource or registers something"
        " process-wide that a reload would duplicate or leak, and where the hooks cannot"
        " work as written. Exit status 1 when it warns; '# hotmod: ignore' silences a line.",
    )
    checker.add_argument("paths", metavar="PATH", nargs="+", help="a module file or a folder")


def check(args: argparse.Namespace) -> int:
    """``hotmod check``: print each warning, then a summary; 1 if anything was found."""
    # The checker is for the command line and CI, not for serving: imported here only.
    from ._check import check_paths

    try:
        report = check_paths(args.paths)
    except FileNotFoundError as exc:
        raise CommandError(f"no such file or folder: {exc.filename}") from None
    for finding in report.findings:
        # File names and syntax error messages come from the files read: printed inert.
        print(inert(str(finding)))
    print(report.summary(), flush=True)
    return EXIT_OK if report.clean else EXIT_ERROR


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hotmod`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "check":
            return check(args)
    except CommandError as exc:
        print(f"hotmod: error: {inert(str(exc))}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C while the application was still loading
        print("hotmod: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse enforces the choices


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Control characters (C0, DEL, C1) and the bidirectional overrides: a newline would
# start a fake line, an escape sequence would recolour or rewrite the terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\n``,
    ``\\x1b``): what module code put in a message prints as itself. With
    ``keep_newlines`` a newline stays, and the next line is indented, so that no
    line of a traceback can pass for a line of hotmod's own."""
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if keep_newlines and char == "\n":
            return "\n    "
        return char.encode("unicode_escape").decode("ascii")

    return _CONTROL.sub(escape, text)


def describe_event(event: ReloadEvent) -> str | None:
    """The line ``hotmod serve`` prints for an engine event (None: nothing to print),
    always one line: what comes from module code is made :func:`inert`."""
    line = _describe(event)
    return None if line is None else inert(line)


def _describe(event: ReloadEvent) -> str | None:
    if event.kind == "reloaded":
        modules = ", ".join(event.modules)
        importers = f" ({event.importers} as importers)" if event.importers else ""
        return (
            f"hotmod: generation {event.generation}: reloaded {len(event.modules)} "
            f"module(s){importers} in {event.duration_ms:.1f} ms: {modules}"
        )
    if event.kind == "unreached":
        return (
            f"hotmod: generation {event.generation}: loaded {', '.join(event.modules)}, "
            f"but {event.detail}"
        )
    if event.kind == "refreshed":
        return f"hotmod: generation {event.generation}: refreshed {event.detail}"
    if event.kind == "restart_needed":
        return (
            f"hotmod: restart needed: {', '.join(event.files)} changed ({event.detail}); "
            f"generation {event.generation} keeps serving until the restart"
        )
    if event.kind == "recovered":
        return f"hotmod: the failed edit was undone; generation {event.generation} serves as before"
    if event.kind == "failed":
        failure = event.failure
        if failure is None:
            return f"hotmod: reload failed: {event.detail}"
        return (
            f"hotmod: reload failed: {failure.where}: {failure.type}: {failure.message} "
            f"(still serving generation {event.generation})"
        )
    return None


class _InertFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record), keep_newlines=True)


class _NotPrinted(logging.Filter):
    """Drop the engine's record of a failed plan: the ``failed`` event prints it as one
    line (and at start-up the command's error line says it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "hotmod_event", None):
            return False  # an event's own line says it
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, LoadFailure) for arg in args)


def _log_to_stderr(level: int = logging.WARNING) -> Callable[[], None]:
    """Warnings and errors of the engine (leaks, slow drains, hooks that raised, with
    their tracebacks) go to stderr; reloads and failures are printed from events.
    ``--verbose`` lowers the level to the engine's INFO and DEBUG lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(_InertFormatter("hotmod: %(levelname)s: %(message)s"))
    handler.addFilter(_NotPrinted())
    logger = logging.getLogger("hotmod")
    logger.addHandler(handler)
    previous = logger.level
    if level < logging.WARNING:
        logger.setLevel(level)

    def stop() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return stop


def _printer(stream: TextIO, *, quiet: bool = False) -> Callable[[ReloadEvent], None]:
    def on_event(event: ReloadEvent) -> None:
        if quiet and event.kind not in ("failed", "restart_needed", "unreached"):
            return
        line = describe_event(event)
        if line is not None:
            print(line, file=stream, flush=True)

    return on_event


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen here, so a port in use is one line of error, not werkzeug's exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _inherited_socket() -> socket.socket | None:
    """The listening socket handed over by the process this one replaced, if any."""
    value = os.environ.pop(SERVER_FD, None)
    if value is None:
        return None
    try:
        sock = socket.socket(fileno=int(value))
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except (ValueError, OSError) as exc:
        raise CommandError(f"{SERVER_FD}={value!r} is not a listening socket: {exc}") from None
    if not listening:
        sock.close()
        raise CommandError(f"{SERVER_FD}={value!r} is not a listening socket")
    return sock


class _Requests:
    """Counts the server's request threads, from accept to the end of the response,
    so a restart can wait for them (werkzeug's request threads are daemons)."""

    def __init__(self, server: Any) -> None:
        self._cond = threading.Condition()
        self._active = 0
        spawn, run = server.process_request, server.process_request_thread

        def process_request(request: Any, client_address: Any) -> None:
            # Counted on the accepting thread, before the request thread exists.
            with self._cond:
                self._active += 1
            try:
                spawn(request, client_address)
            except BaseException:
                self._done()
                raise

        def process_request_thread(request: Any, client_address: Any) -> None:
            try:
                run(request, client_address)
            finally:
                self._done()

        server.process_request = process_request
        server.process_request_thread = process_request_thread

    def _done(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every request to end; return how many run on."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active > 0 and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._active


def restart_argv() -> list[str]:
    """The command line that started this process, to run it again."""
    return [sys.executable, *sys.orig_argv[1:]]


def _restart(server: Any, app: HotReload, requests: _Requests, restart: dict[str, Any]) -> None:
    """Re-execute this command with the listening socket kept open: connections that
    arrive meanwhile wait in its backlog and are served by the new process."""
    print(
        f"hotmod: restarting: {restart.get('reason', '')} (the socket stays open)", flush=True
    )
    # werkzeug closes its socket when serve_forever ends: keep a duplicate open.
    fd = os.dup(server.socket.fileno())
    app.end_live_polls()  # a page's held poll must not hold the restart
    server.shutdown()
    left = requests.wait(RESTART_DRAIN)
    if left:
        print(f"hotmod: warning: {left} request(s) still running after {RESTART_DRAIN:.0f} s:"
              " restarting anyway", file=sys.stderr, flush=True)
    app.close()  # purge hooks: connections closed, not dropped
    _reexec(fd, app)


def _load(args: argparse.Namespace, *, restarted: bool = False) -> HotReload:
    """Load the target. Code that fails to load is served as its error page (a 503 in
    production) until an edit fixes it; a target that cannot be found at all (a typo
    on the command line) is an error, except in a restarted process, where an edit
    may have caused it and the next one may fix it."""
    for folder in args.watch:
        if not Path(folder).is_dir():
            raise CommandError(f"watch folder {folder!r} does not exist or is not a folder")
    roots = os.environ.pop(RESTART_ROOTS, None)
    watch = args.watch or None
    if restarted and roots and not args.watch:
        watch = [r for r in roots.split(os.pathsep) if Path(r).is_dir()] or None
    try:
        app = HotReload(
            args.target,
            watch=watch,
            debug=not args.production,
            allow_hosts=args.allow_host,
            poll=args.poll,
            exclude=args.exclude,
            extra=args.extra,
            drain_warning=args.drain_warning,
            drain_timeout=args.drain_timeout,
            restarts=True,
            on_load_error="serve",
            interface=args.interface,
            live_reload=False if args.live_reload == "off" else args.live_reload,
        )
    except ReloadError as exc:
        failure = exc.failure
        raise CommandError(
            f"cannot load {args.target}: {failure.where}: {failure.type}: {failure.message}"
        ) from None
    except (HotmodError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if isinstance(app.load_error, TargetError) and not restarted:
        app.close()
        raise CommandError(str(app.load_error))
    return app


def _load_failure_line(app: HotReload, production: bool) -> str:
    """What the serving line adds when the target did not load."""
    failure = app.reloader.last_error
    why = (
        f"{failure.where}: {failure.type}: {failure.message}" if failure is not None
        else str(app.load_error)
    )
    shown = "a plain 503" if production else "the error page"
    return f"; it did not load: {why}; serving {shown} until an edit fixes it"


def serve(args: argparse.Namespace) -> int:
    # As `python -m` would: the application's packages are importable from here.
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)
    if is_ini_target(args.target):
        _apply_ini(args)
    if args.port is None:
        args.port = DEFAULT_PORT

    from werkzeug.serving import make_server

    stop_logging = _log_to_stderr(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return _serve(args, make_server)
    finally:
        stop_logging()


def _apply_ini(args: argparse.Namespace) -> None:
    """An .ini target: its folder is importable too (a project not installed, or a
    ``call:`` factory), and its ``[server:main]`` port is the default port. Its host is
    not taken: a ``listen = *:6543`` would publish the debug page to the network."""
    try:
        ini = load_ini_target(args.target)
    except HotmodError as exc:
        raise CommandError(str(exc)) from None
    folder = str(ini.path.parent)
    if folder not in sys.path:
        sys.path.insert(1, folder)
    if args.port is None:
        args.port = ini.port()


def _serve(args: argparse.Namespace, make_server: Callable[..., Any]) -> int:
    inherited = _inherited_socket()
    try:
        app = _load(args, restarted=inherited is not None)
    except BaseException:
        if inherited is not None:
            inherited.close()
        raise
    try:
        sock = inherited if inherited is not None else _listen(args.host, args.port)
    except CommandError:
        app.close()
        raise
    if app.interface == "asgi":
        return _serve_asgi(args, app, sock)
    try:
        server = make_server(args.host, args.port, app, threaded=True, fd=sock.fileno())
    except BaseException:
        app.close()
        raise
    finally:
        sock.close()  # the server holds its own duplicate of the descriptor
    requests = _Requests(server)
    life = _Lifecycle(app, quiet=args.quiet)
    say = _announce(args, app, server.server_address)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="hotmod-serve", daemon=True
    )
    thread.start()
    try:
        while thread.is_alive() and not life.stop.wait(0.2):
            pass
        if life.restart:
            life.close()
            _restart(server, app, requests, life.restart[0])  # does not return
    finally:
        say("hotmod: shutting down")
        app.end_live_polls()
        server.shutdown()
        server.server_close()
        _wait_for_requests(app, SHUTDOWN_DRAIN)
        life.close()
        app.close()
    if not life.stop.is_set():
        print("hotmod: error: the server thread stopped unexpectedly", file=sys.stderr, flush=True)
        return EXIT_ERROR
    say("hotmod: stopped")
    return EXIT_OK


class _Lifecycle:
    """What ends serving: Ctrl-C or SIGTERM (``stop``), or a restart the engine asks
    for (``restart`` holds its notice, and ``stop`` is set). It also prints the reload
    lines. :meth:`close` unsubscribes and puts the signal handlers back."""

    def __init__(self, app: HotReload, *, quiet: bool) -> None:
        self.stop = threading.Event()
        self.restart: list[dict[str, Any]] = []
        self._app = app
        self._unsubscribe = [
            app.reloader.subscribe(_printer(sys.stdout, quiet=quiet)),
            app.reloader.subscribe(self._on_event),
        ]
        self._previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _on_event(self, event: ReloadEvent) -> None:
        if event.kind == "restart_needed" and not self.restart:
            self.restart.append(self._app.reloader.restart_needed or {"reason": event.detail})
            self.stop.set()

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def close(self) -> None:
        """Twice is harmless."""
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for undo in unsubscribe:
            undo()
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reexec(fd: int, app: HotReload) -> NoReturn:
    """Run this command again in this process, handing it the listening socket's
    descriptor ``fd`` and the watched roots."""
    os.set_inheritable(fd, True)
    os.environ[SERVER_FD] = str(fd)
    os.environ[RESTART_ROOTS] = os.pathsep.join(app.reloader.roots.paths)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = restart_argv()
    os.execv(argv[0], argv)


def _announce(args: argparse.Namespace, app: HotReload, address: Any) -> Callable[[str], None]:
    """Print the serving line, the watched roots and, where it applies, the warning
    about debug pages on a network interface; return the printer of the lines that
    ``--quiet`` silences."""
    host, port = address[:2]
    shown_host = f"[{host}]" if ":" in str(host) else host
    mode = "production" if args.production else "debug"
    failed = _load_failure_line(app, args.production) if app.load_error is not None else ""
    server = ", ASGI on uvicorn" if app.interface == "asgi" else ""
    print(
        inert(f"hotmod: serving {args.target} on http://{shown_host}:{port}/ "
              f"(generation {app.generation}, {mode} mode{server}; Ctrl-C to stop){failed}"),
        flush=True,
    )
    roots = ", ".join(getattr(app.reloader.roots, "paths", ())) or "?"
    backend = getattr(app.reloader.watcher, "backend", None)
    say: Callable[[str], None] = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    say(f"hotmod: watching {roots}" + (f" ({backend})" if backend else ""))
    hosts = HostCheck(args.allow_host)
    if not args.production and (not is_loopback(args.host) or "*" in hosts.allowed):
        others = "." if "*" in hosts.allowed else "; other hosts get a 400."
        print(
            f"hotmod: warning: debug mode on {args.host}: the error page (source code, tracebacks)"
            f" and /__hotmod__ answer requests for {hosts.describe()}{others}"
            " A client that sends such a Host itself is not stopped: use --production on a"
            " network you do not trust",
            file=sys.stderr,
            flush=True,
        )
    return say


def _serve_asgi(args: argparse.Namespace, app: HotReload, sock: socket.socket) -> int:
    """Serve an ASGI target with uvicorn, on a thread of its own (so that this thread
    keeps the signals, as for WSGI, and uvicorn installs none). uvicorn drives the
    lifespan: :class:`HotReload` starts the app's at uvicorn's startup and, at its
    shutdown, stops every live generation's and runs the purge hooks. A restart stops
    uvicorn (open connections get ``RESTART_DRAIN`` seconds) and re-executes this
    command with a duplicate of the socket, whose backlog holds the connections that
    arrive meanwhile."""
    try:
        import uvicorn
    except ImportError:
        sock.close()
        app.close()
        raise CommandError(
            f"{args.target} is an ASGI application; serving it needs uvicorn:"
            " pip install 'hotmod[asgi]'"
        ) from None
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False, server_header=False,
        timeout_graceful_shutdown=int(RESTART_DRAIN),
    )
    server = uvicorn.Server(config)
    life = _Lifecycle(app, quiet=args.quiet)
    say = _announce(args, app, sock.getsockname())
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="hotmod-serve", daemon=True
    )
    thread.start()
    fd: int | None = None
    try:
        while thread.is_alive() and not life.stop.wait(0.2):
            pass
        if life.restart:
            print(f"hotmod: restarting: {life.restart[0].get('reason', '')} (the socket stays open)",
                  flush=True)
            fd = os.dup(sock.fileno())  # uvicorn closes its socket as it stops
            app.end_live_polls()  # a page's held poll must not hold the restart
            _stop_accepting(server, app)
        else:
            say("hotmod: shutting down")
            app.end_live_polls()
        server.should_exit = True
        thread.join(RESTART_DRAIN + SHUTDOWN_DRAIN + 5)
    finally:
        life.close()
        app.close()  # done by uvicorn's lifespan shutdown already, unless it never ran
    if fd is not None:
        _reexec(fd, app)
    if not life.stop.is_set():
        print("hotmod: error: the server thread stopped unexpectedly", file=sys.stderr, flush=True)
        return EXIT_ERROR
    say("hotmod: stopped")
    return EXIT_OK


#: Seconds between uvicorn's last accept and its shutdown at a restart, counted by its
#: own loop: a connection accepted just before has sent its request by then.
ACCEPT_GRACE = 0.5


def _stop_accepting(server: Any, app: HotReload) -> None:
    """Before uvicorn shuts down for a restart: stop its accepting, so that new
    connections wait in the kept socket's backlog for the next process, and give the
    ones it just accepted a moment on its loop to send their request. uvicorn's
    shutdown closes a connection that has not begun a request (it lets the ones that
    have finish): without this, a client that connected in the instant before would
    be reset. The moment is measured on the loop, so a busy loop gets it whole."""
    loop = getattr(getattr(app, "_loop", None), "loop", None)
    servers = list(getattr(server, "servers", ()))
    if loop is None or not servers or loop.is_closed():
        return

    async def stop() -> None:
        running = asyncio.get_running_loop()
        # Stop the accepting first and let the connections just accepted be attached:
        # asyncio accepts in a callback and attaches in a task, and a Server closed in
        # between drops the connection (reset, its request unread).
        for listening in servers:
            for accepting in listening.sockets:
                running.remove_reader(accepting.fileno())
        for _ in range(3):
            await asyncio.sleep(0)
        for listening in servers:
            listening.close()
        await asyncio.sleep(ACCEPT_GRACE)

    try:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(ACCEPT_GRACE + 5)
    except Exception as exc:  # the loop stopped meanwhile, or is stuck: restart anyway
        print(f"hotmod: warning: could not stop accepting before the restart: {exc!r}",
              file=sys.stderr, flush=True)


def _wait_for_requests(app: HotReload, timeout: float) -> None:
    """Give requests still streaming a bounded moment to finish before purge hooks run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = app.reloader.stats()
        if app.generation == 0 or (app.reloader.current.in_flight == 0 and not stats.get("draining")):
            return
        time.sleep(0.02)
