"""``HotReload``: a WSGI application that serves the current generation of another one."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..reloader import (
    HotmodError,
    LoadFailure,
    Reloader,
    ReloadError,
    TargetError,
    default_root,
    file_signature,
)
from ._errorpage import PAGE_POLICY, render_error_page, render_exception_page, render_restart_page
from ._frameworks import attach as attach_frameworks
from ._guard import NOTHING_POLICY, PROTECTIVE_HEADERS, HostCheck
from ._live import (
    LIVE_PREFIX,
    LIVE_REQUEST_KEY,
    LiveChannel,
    WsgiCapture,
    inject,
    live_mode,
    live_origin,
    page_policy,
)
from ._paste import default_roots as default_roots_of_ini
from ._paste import is_ini_target, load_ini_target
from ._response import wrap_response
from ._sniff import is_asgi
from ._status import STATUS_PATH, build_status, status_body

log = logging.getLogger("hotmod.middleware")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

#: Response header that names the generation which served a request (debug mode).
GENERATION_HEADER = "X-Hotmod-Generation"
#: Environ key holding the number (an int) of the generation serving the request.
GENERATION_KEY = "hotmod.generation"

_instances: weakref.WeakSet[HotReload] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for app in list(_instances):
        # The next request of this child restarts watching (one attribute read per
        # request, cheaper than comparing fork counters).
        app._forked = True
        # A lock held by another thread at fork time would stay held forever in the child.
        app._fork_lock = threading.Lock()
        app._scan_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HotReload:
    """Serve ``target`` and swap in a new generation of its code when its files change.

    ``target`` is ``"pkg.module:attr"``, ``"pkg.module:factory()"`` or a PasteDeploy
    file, ``"development.ini"`` (``"development.ini#name"`` for ``[app:name]``), whose
    factory is called with ``(global_config, **settings)``. The target is
    loaded here, so a bad target or code that fails to import raises at once
    (:class:`hotmod.TargetError`, :class:`hotmod.ReloadError`), never on the first
    request.

    Each request is pinned to the generation that was current when it began: it runs
    that generation's application and leaves the generation when the server calls
    ``close()`` on the response, or at once if the application raises. The exception
    then propagates unchanged: errors of the application are not the middleware's
    business.

    :param watch: the watched roots; by default the folder holding the target's
        top-level package (the engine refuses stdlib and site-packages roots).
    :param debug: serve an error page (500) while the latest edit failed to load,
        answer ``GET /__hotmod__`` with a JSON status, and add the
        ``X-Hotmod-Generation`` header, all to requests whose ``Host`` is
        ``localhost``, ``127.0.0.1``, ``[::1]`` (any port) or in ``allow_hosts`` only;
        other hosts get a 400 for the first two and no header. Off by default: then a
        failed edit never changes what users see, and is only logged.
    :param allow_hosts: more host names that may see the debug pages: ``"shop.test"``,
        ``".shop.test"`` (with its subdomains), an address, or ``"*"`` (any host: a
        page on any site that resolves its name to this server could read them).
    :param poll: use the polling watcher instead of the native events (inotify on
        Linux, watchdog's observer elsewhere); ``HOTMOD_WATCHER`` names a backend.
    :param exclude: glob patterns of files that are never reloaded.
    :param extra: glob patterns of non-Python files whose change reloads.
    :param scan_interval: seconds; when set, no watcher thread runs: a request checks
        the files at most once per interval, and the request that notices a change
        runs the reload itself (mod_python's ``PythonAutoReload``).
    :param drain_timeout: seconds a superseded generation may keep requests in flight
        before the engine retires it anyway and runs its purge hooks (default: never).
    :param drain_warning: seconds after which a generation still draining is logged.
    :param log: make the ``hotmod`` logger's lines visible on stderr (one INFO line
        per reload) unless logging is already configured: see :func:`log_reloads`.
    :param restarts: the server restarts this process itself when a restart-only
        module changes (``hotmod serve`` does, keeping its socket). Without it, debug
        mode answers with a "restart needed" page (503) until the process restarts;
        production mode keeps serving the last generation. Both log it once.
    :param on_load_error: ``"raise"`` (default): a target whose code fails to load
        raises here. ``"serve"``: it is served anyway, as after a failed edit with no
        generation to fall back on: the error page (debug mode, allowed hosts) or a
        plain 503, while the watcher waits for the edit that fixes it; the first plan
        that loads becomes generation 1 (``hotmod serve`` does this). The exception
        is kept in :attr:`load_error`.
    :param probe: see :class:`reloader.Reloader` (a failed plan that a fresh process
        loads asks for a restart); default: on, unless ``HOTMOD_PROBE=0``.
    :param live_reload: debug mode only: open pages follow each generation by
        themselves (docs/live-reload.md). ``True`` or ``"morph"``: a small script tag
        goes into each complete HTML response for an allowed host, and the page patches
        itself in place (scroll and typed values kept); ``"reload"``: it reloads
        whole; ``False``: off, nothing added.
    """

    def __init__(
        self,
        target: str,
        *,
        watch: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
        debug: bool = False,
        allow_hosts: Iterable[str] = (),
        poll: bool = False,
        exclude: Iterable[str] = (),
        extra: Iterable[str] = (),
        scan_interval: float | None = None,
        drain_timeout: float | None = None,
        drain_warning: float = 60.0,
        log: bool = False,
        restarts: bool = False,
        on_load_error: str = "raise",
        probe: bool | None = None,
        interface: str = "auto",
        live_reload: bool | str = True,
    ) -> None:
        if not isinstance(target, str) or not target:
            raise ValueError(f"target must be a string like 'pkg.module:app', got {target!r}")
        if scan_interval is not None and not scan_interval > 0:
            raise ValueError(f"scan_interval must be a positive number of seconds, got {scan_interval!r}")
        if isinstance(exclude, str) or isinstance(extra, str):
            raise ValueError("exclude and extra take a list of glob patterns, not a single string")
        if isinstance(allow_hosts, str):
            raise ValueError("allow_hosts takes a list of host names, not a single string")
        if on_load_error not in ("raise", "serve"):
            raise ValueError(f"on_load_error must be 'raise' or 'serve', not {on_load_error!r}")
        mode = live_mode(live_reload)
        if interface not in ("auto", "wsgi", "asgi"):
            raise ValueError(f"interface must be 'auto', 'wsgi' or 'asgi', not {interface!r}")
        roots: list[str] | None
        if watch is None:
            roots = None
        elif isinstance(watch, (str, os.PathLike)):
            roots = [os.fspath(watch)]
        else:
            roots = [os.fspath(root) for root in watch]

        if log:
            log_reloads()
        factory_args: tuple[Any, ...] = ()
        factory_kwargs: dict[str, Any] | None = None
        app_target = target
        if is_ini_target(target):
            ini = load_ini_target(target)
            app_target, factory_args, factory_kwargs = ini.factory, (ini.global_config,), ini.settings
            if roots is None:
                roots = default_roots_of_ini(ini, default_root(ini.module))

        self.target = target
        self._on_load_error = on_load_error
        self.debug = bool(debug)
        self.restarts = bool(restarts)
        # Which hosts may see the debug pages (debug mode only); its verdict cache is
        # written by any request thread (one dict assignment, see HostCheck.judge).
        self._hosts = HostCheck(allow_hosts)
        self._scan_interval = scan_interval
        # Fields below are written by the thread named in each comment; requests only read.
        self._closed = False  # owner: close()
        # Set in a forked child by the at-fork hook; owner: _after_fork(), under _fork_lock.
        self._forked = False
        self._fork_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        # The error page of the latest failure, rendered once; owner: _serve_error_page().
        self._page: tuple[LoadFailure, bytes] | None = None
        # Next monotonic time a request may scan; None when a watcher thread runs.
        self._scan_at: float | None = None  # owner: _scan(), under _scan_lock
        # File signatures (file_signature's, compared whole) when the last scan's
        # reload failed; owner: _scan().
        self._failed_at: dict[Path, object] | None = None

        self._reloader = Reloader(
            app_target,
            factory_args=factory_args,
            factory_kwargs=factory_kwargs,
            roots=roots,
            exclude=tuple(exclude),
            extra=tuple(extra),
            drain_timeout=drain_timeout,
            drain_warning=drain_warning,
            probe=probe,
        )
        #: Why the target did not load here (``on_load_error="serve"``), else None.
        self.load_error: ReloadError | TargetError | None = None
        self.frameworks: list[Any] = []
        self._unsubscribe_late: Callable[[], None] | None = None
        #: What open pages follow (debug mode with live reload on), else None.
        self._live: LiveChannel | None = None
        # The last of hotmod's own pages given the live script; owner: _live_page().
        self._live_cache: tuple[bytes, bytes, str, bytes, str] | None = None
        try:
            try:
                self._reloader.load()
            except (ReloadError, TargetError) as exc:
                if on_load_error == "raise":
                    raise
                self.load_error = exc
                failure = self._reloader.last_error
                if failure is not None and failure.file and not self._reloader.roots.contains(failure.file):
                    # Its project folder is not known before a load (framework support
                    # adds it): watch the failing file's package, or its fix goes unseen.
                    self._reloader.add_root_of(failure.file)
                logging.getLogger("hotmod.middleware").info(
                    "%s did not load; serving %s until an edit fixes it", target,
                    "its error page" if self.debug else "503")
                self._unsubscribe_late = self._reloader.subscribe(self._on_late_load)
            else:
                # Before the watcher starts: support may add roots and template folders.
                self.frameworks = attach_frameworks(self._reloader, debug=self.debug)
            if self.debug and mode is not None:
                self._live = LiveChannel(
                    self._reloader, mode=mode, restarts=self.restarts, watched=scan_interval is None
                )
                if self.load_error is None:
                    self._live.attach_files()
            loaded_asgi = None if self.load_error is not None else is_asgi(self._reloader.current.target)
            if interface != "auto" and loaded_asgi is not None and loaded_asgi != (interface == "asgi"):
                raise ValueError(
                    f"interface={interface!r}, but {target} is {'an ASGI' if loaded_asgi else 'a WSGI'}"
                    " application"
                )
            if interface == "asgi" or (interface == "auto" and loaded_asgi):
                from ._asgi import AsgiHotReload

                AsgiHotReload._become_asgi(self, drain_timeout)  # type: ignore[arg-type]
            if scan_interval is None:
                # poll=None lets the engine honour HOTMOD_POLL=1.
                self._reloader.watch(poll=True if poll else None)
            else:
                self._scan_at = time.monotonic() + scan_interval
        except BaseException:
            self._reloader.close()
            raise
        self._acquire = self._reloader.acquire
        # Debug features or an interval scan take the second, longer request path.
        self._extras = self.debug or scan_interval is not None
        _instances.add(self)
        atexit.register(self.close)

    # -- the request path -------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # The production path: three attribute reads, enter, call, wrap.
        if self._forked:
            self._after_fork()
        if self._extras:  # an interval scan and/or the debug features
            if self._scan_at is not None and time.monotonic() >= self._scan_at:
                self._scan()
            if self.debug:
                # The Host check runs here only, where a debug feature is to be served
                # (one dict lookup for a host seen before).
                host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")  # host_of()
                allowed = self._hosts.seen.get(host)
                if allowed is None:
                    allowed = self._hosts.judge(host)
                if allowed:
                    return self._call_debug(environ, start_response)
                if self._serves_debug_page(environ):
                    return self._refuse_host(environ, start_response)
                # Any other path: the application answers, without the debug header.
        try:
            generation = self._acquire()
        except HotmodError:
            return self._unavailable(environ, start_response)
        try:
            environ[GENERATION_KEY] = generation.number
            result = generation.target(environ, start_response)
        except BaseException:
            generation.exit()
            raise
        if result.__class__ is list:  # wrap_response's first case, inlined: the common body
            generation.exit()
            return result
        return wrap_response(result, generation, environ)

    def _serves_debug_page(self, environ: Environ) -> bool:
        """Whether an allowed host would get a debug page for this request rather than
        the application's answer: the status, the error page, the restart page."""
        reloader = self._reloader
        return (
            environ.get("PATH_INFO") == STATUS_PATH
            or reloader.last_error is not None
            or (not self.restarts and reloader.restart_needed is not None)
        )

    def _call_debug(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == STATUS_PATH:
            return self._serve_status(environ, start_response)
        live = self._live
        if live is not None:
            if path is not None and path.startswith(LIVE_PREFIX):
                return live.serve_wsgi(environ, start_response)
            wanted = environ.get(LIVE_REQUEST_KEY)
            if wanted:  # the page script's own fetch: this process loads what it saw first
                live.catch_up(_int(wanted))
        failure = self._reloader.last_error
        if failure is not None:
            return self._serve_error_page(failure, start_response, environ)
        if not self.restarts and self._reloader.restart_needed is not None:
            return self._serve_restart_page(start_response, environ)
        try:
            generation = self._acquire()
        except HotmodError:
            return self._unavailable(environ, start_response)
        capture = WsgiCapture(
            start_response, [(GENERATION_HEADER, str(generation.number))],
            environ.get("REQUEST_METHOD", "GET"), inject=live is not None,
        )
        try:
            environ[GENERATION_KEY] = generation.number
            result = generation.target(environ, capture)
        except Exception as exc:
            generation.exit()
            capture.deferring = False
            return self._exception_page(exc, environ, capture, generation.number, capture.started)
        except BaseException:
            generation.exit()
            raise
        # A response started later (a generator's first step) goes out as it comes.
        capture.deferring = False
        if capture.held is not None and live is not None:
            try:
                return capture.finish(result, live, environ)
            finally:
                generation.exit()
        return wrap_response(result, generation, environ)

    def _live_page(self, body: bytes, policy: str, environ: Environ | None) -> tuple[bytes, str]:
        """One of hotmod's own HTML pages, with the live script where live reload is on:
        an open error page follows the fix by itself."""
        live = self._live
        if live is None or environ is None:
            return body, policy
        origin = live_origin(environ)
        if origin is None:
            return body, policy
        base = environ.get("SCRIPT_NAME", "")
        tag = live.tag(base, page="hotmod")
        cached = self._live_cache
        if cached is not None and cached[0] is body and cached[1] == tag and cached[2] == origin + base:
            return cached[3], cached[4]  # rendered once per failure and state, as the page itself
        new = inject(body, tag)
        if new is None:
            return body, policy
        widened = page_policy(policy, origin + base)
        self._live_cache = (body, tag, origin + base, new, widened)
        return new, widened

    def _exception_page(
        self, exc: Exception, environ: Environ, start_response: StartResponse, number: int, started: bool
    ) -> list[bytes]:
        """Debug mode: the traceback page for an exception the application raised
        before returning its response. If the application had called start_response,
        the exception goes with the page's: should its headers be out already, PEP 3333
        makes the server re-raise it, and it handles it as it would without hotmod."""
        request = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
        in_roots = self._reloader.roots.contains
        log.error("%s raised %s (generation %d)", request, type(exc).__name__, number, exc_info=exc)
        failure = LoadFailure.from_exception(exc, _module_of(exc, in_roots), in_roots)
        body = render_exception_page(failure, generation=number, request=request, readable=in_roots)
        body, policy = self._live_page(body, PAGE_POLICY, environ)
        # No generation header here: start_response adds it (the application's own).
        return _respond(
            start_response, "500 Internal Server Error", _HTML, body, policy,
            exc_info=(type(exc), exc, exc.__traceback__) if started else None,
        )

    def _unavailable(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """No generation serves (the target never loaded, or this HotReload is closed):
        in debug mode for an allowed host, the page saying why; else a plain 503."""
        if self.debug and self._hosts.judge(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")):
            failure = self._reloader.last_error
            if failure is not None:
                return self._serve_error_page(failure, start_response, environ)
            if self._reloader.restart_needed is not None:
                return self._serve_restart_page(start_response, environ)
        return _respond(
            start_response, "503 Service Unavailable", "text/plain; charset=utf-8",
            b"Service Unavailable\n", NOTHING_POLICY, head=environ.get("REQUEST_METHOD") == "HEAD",
        )

    def _on_late_load(self, event: Any) -> None:
        """The first generation loaded after a failed start: attach framework support
        as at a good start. On a thread of its own: extending the engine restarts the
        watcher, whose thread publishes this event."""
        if event.kind not in ("reloaded", "unreached") or self._closed:
            return
        unsubscribe, self._unsubscribe_late = self._unsubscribe_late, None
        if unsubscribe is None:
            return  # another event got here first
        unsubscribe()
        self.load_error = None
        if self.interface == "wsgi" and is_asgi(self._reloader.current.target):
            # Started with no code to look at, the server guessed WSGI: only a restart
            # (``hotmod serve`` makes it) serves the target as what it turned out to be.
            self._reloader.request_restart(
                "the target loaded as an ASGI application, and this server was started for WSGI"
                " (it did not load at start-up; pass interface='asgi' or --interface asgi)"
            )

        def attach() -> None:
            try:
                self.frameworks = attach_frameworks(self._reloader, debug=self.debug)
                if self._live is not None:
                    self._live.attach_files()
            except HotmodError as exc:  # closed meanwhile
                log.debug("framework support not attached: %s", exc)

        threading.Thread(target=attach, name="hotmod-attach", daemon=True).start()

    def _serve_restart_page(
        self, start_response: StartResponse, environ: Environ | None = None
    ) -> list[bytes]:
        restart = self._reloader.restart_needed or {}
        number = self.generation
        body, policy = self._live_page(render_restart_page(restart, generation=number), PAGE_POLICY, environ)
        return _respond(
            start_response, "503 Service Unavailable", _HTML, body, policy, generation=number
        )

    def _serve_error_page(
        self, failure: LoadFailure, start_response: StartResponse, environ: Environ | None = None
    ) -> list[bytes]:
        number = self.generation
        page = self._page
        if page is None or page[0] is not failure:
            # Rendered once per failure: the source file is read once, not per request.
            body = render_error_page(failure, generation=number, readable=self._reloader.roots.contains)
            page = self._page = (failure, body)
        body, policy = self._live_page(page[1], PAGE_POLICY, environ)
        return _respond(
            start_response, "500 Internal Server Error", _HTML, body, policy, generation=number
        )

    def _serve_status(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response(
                "405 Method Not Allowed",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain"), ("Content-Length", "0"),
                 *PROTECTIVE_HEADERS],
            )
            return []
        return _respond(
            start_response, "200 OK", "application/json", status_body(self.status()), NOTHING_POLICY,
            generation=self.generation, head=environ.get("REQUEST_METHOD") == "HEAD",
        )

    def _refuse_host(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        return _respond(
            start_response, "400 Bad Request", "text/plain; charset=utf-8", self._hosts.refusal(environ),
            NOTHING_POLICY, head=environ.get("REQUEST_METHOD") == "HEAD",
        )

    def _after_fork(self) -> None:
        with self._fork_lock:
            if not self._forked:
                return  # another request of this child got here first
            self._reloader.check_fork()
            self._forked = False

    def _scan(self) -> None:
        """Check the files and reload on this request's thread (``scan_interval`` mode)."""
        if not self._scan_lock.acquire(blocking=False):
            return  # another request is scanning; this one serves the current generation
        try:
            if self._closed or self._scan_at is None or time.monotonic() < self._scan_at:
                return
            if self._failed_at is None or self._signatures() != self._failed_at:
                before = self._signatures()
                try:
                    # While frozen the engine only notes what changed as pending.
                    self._reloader.reload()
                except ReloadError:
                    # Logged once by the engine. Not retried until a file changes again,
                    # else every interval would log the same failure anew.
                    self._failed_at = before
                else:
                    self._failed_at = None
            self._scan_at = time.monotonic() + (self._scan_interval or 0.0)
        finally:
            self._scan_lock.release()

    def _signatures(self) -> dict[Path, object]:
        return {path: file_signature(path) for path in self._reloader.files()}

    # -- control ----------------------------------------------------------------------

    @property
    def interface(self) -> str:
        """``"wsgi"`` or ``"asgi"``: what this object serves as."""
        return "wsgi"

    @property
    def reloader(self) -> Reloader:
        """The engine underneath, for advanced use."""
        return self._reloader

    @property
    def generation(self) -> int:
        """The current generation's number (0 while the target has never loaded)."""
        try:
            return self._reloader.current.number
        except HotmodError:
            return 0

    @property
    def frozen(self) -> bool:
        """True between :meth:`freeze` and :meth:`thaw`."""
        return bool(self._reloader.frozen)

    def freeze(self) -> None:
        """Stop reloading: changed files are noted as pending, the current generation serves."""
        self._reloader.freeze()

    def thaw(self) -> int:
        """Resume reloading and load what changed while frozen; return the generation number."""
        return self._reloader.thaw()

    def reload(self) -> int:
        """Reload what changed now, synchronously; return the current generation's number.

        Raises :class:`reloader.ReloadError` when the plan failed (the last good
        generation keeps serving).
        """
        return self._reloader.reload()

    def status(self) -> dict[str, Any]:
        """The document served at ``/__hotmod__``."""
        document = build_status(
            self._reloader.stats(),
            frozen=self._reloader.frozen,
            graph=self._reloader.graph(),
            frameworks=[support.name for support in self.frameworks],
        )
        if self._live is not None:
            document["live"] = self._live.describe()
        return document

    @property
    def live(self) -> LiveChannel | None:
        """What open pages follow (debug mode, live reload on), else None."""
        return self._live

    def end_live_polls(self) -> None:
        """End the pages' held polls now (they poll again): the server is about to stop
        or restart, and nothing should wait on a page. ``hotmod serve`` calls it."""
        if self._live is not None:
            self._live.close()

    def close(self) -> None:
        """Stop watching and run the current generation's purge hooks. Twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.end_live_polls()
        unsubscribe, self._unsubscribe_late = self._unsubscribe_late, None
        if unsubscribe is not None:
            unsubscribe()
        try:
            atexit.unregister(self.close)
        finally:
            self._reloader.close()

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self.frozen:
            state = "frozen"
        else:
            state = "watching" if self._scan_interval is None else "scanning"
        return f"<HotReload {self.target!r} generation={self.generation} {state}>"


def log_reloads(level: int = logging.INFO) -> None:
    """Make hotmod's log lines visible: one INFO line per reload, failures at ERROR,
    leaks and slow drains at WARNING. ``HotReload(..., log=True)`` calls it.

    It sets the ``hotmod`` logger's level and, unless logging is configured already
    (a handler on the root logger or on ``hotmod``), adds one stderr handler. Calling
    it twice adds nothing more."""
    logger = logging.getLogger("hotmod")
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("hotmod: %(levelname)s: %(message)s"))
    logger.addHandler(handler)


_HTML = "text/html; charset=utf-8"


def _respond(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    policy: str,
    *,
    generation: int | None = None,
    head: bool = False,
    exc_info: Any = None,
) -> list[bytes]:
    """One of hotmod's own answers (a debug page, the status, a refusal): its
    length, the protective headers and the content policy always go with it, the
    generation header where a generation is named, no body for a HEAD request.
    ``exc_info`` goes to ``start_response`` as PEP 3333 has it, when given."""
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        *PROTECTIVE_HEADERS,
        ("Content-Security-Policy", policy),
    ]
    if generation is not None:
        headers.append((GENERATION_HEADER, str(generation)))
    if exc_info is None:
        start_response(status, headers)
    else:
        start_response(status, headers, exc_info)
    return [] if head else [body]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _module_of(exc: BaseException, in_roots: Callable[[str], bool]) -> str:
    """The module of the innermost frame of the application's own code (the one the
    page shows), else of the innermost frame."""
    name = own = ""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        name = str(frame.f_globals.get("__name__", "?"))
        if in_roots(frame.f_code.co_filename):
            own = name
    return own or name or "?"
