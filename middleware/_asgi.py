"""The ASGI face of :class:`HotReload`: the same generations, serving an ASGI target.

``HotReload(target)`` becomes an instance of :class:`AsgiHotReload` when the target is
an ASGI application (:func:`is_asgi`), so that servers which look at the object they
are given (uvicorn, hypercorn) see a coroutine ``__call__``. Everything but the request
path is :class:`HotReload`'s: the engine, the watcher, the Host rule, the pages.

What ASGI adds, and where it is done (docs/asgi.md says it for users):

* **Pinning.** A connection (an HTTP request with its streamed body, an SSE stream, a
  WebSocket) enters the generation current when it began and leaves it when the
  target's coroutine returns, which for ASGI is the end of the connection: a stream
  opened on generation N runs to its end on N while new connections get N+1.
* **A lifespan per app.** Each generation's target is an app object of its own (a new
  ``FastAPI()``), so each gets its own lifespan, run on the server's event loop: the
  startup of a new generation runs before it becomes current (:meth:`AsgiSupport.prepare`,
  a startup that fails is a failed plan), its shutdown once it has drained and before
  its purge hooks (:meth:`AsgiSupport.retiring`). Its lifespan state is the
  ``scope["state"]`` of the requests pinned to it.
* **The event loop is never the reloading thread.** Plans run on the watcher's thread
  (in ``scan_interval`` mode on a worker thread): module code never blocks the loop;
  the loop is only asked to run the lifespans and the async purge hooks.
* **The drain bound.** With ``drain_timeout``, a connection still open on a superseded
  generation that long is ended cleanly: a stream gets its last, empty chunk, a
  WebSocket a close frame with code 1012 (service restart), an HTTP request not yet
  answered a 503.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..reloader import Extension, Generation, HotmodError
from ._app import GENERATION_HEADER, GENERATION_KEY, HotReload
from ._live import LIVE_PREFIX, AsgiCapture
from ._sniff import is_asgi
from ._status import STATUS_PATH

log = logging.getLogger("hotmod.middleware")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Seconds a lifespan's startup or shutdown may take before hotmod gives up on it.
LIFESPAN_TIMEOUT = 30.0
#: The WebSocket close code sent to a connection ended by the drain bound: RFC 6455's
#: registry names 1012 "Service Restart": the client may reconnect (to the new code).
DRAIN_CLOSE_CODE = 1012
_HEADER = GENERATION_HEADER.lower().encode("latin-1")


class LifespanFailed(RuntimeError):
    """An app's lifespan startup answered ``lifespan.startup.failed`` without raising."""


class ServerLoop:
    """The server's event loop, as seen from hotmod's threads: the lifespans and the
    async purge hooks run there, handed over with ``run_coroutine_threadsafe``."""

    def __init__(self, fallback: Callable[[Awaitable[Any]], Any]) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._fallback = fallback  # the engine's own runner, for when no loop runs

    def bind(self) -> None:
        """Called on the loop (its first lifespan or request): remember it."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self._thread = threading.get_ident()

    @property
    def usable(self) -> bool:
        loop = self.loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    def on_loop_thread(self) -> bool:
        return self._thread == threading.get_ident()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run ``coroutine`` on the loop from another thread; its result or exception.
        Cancelled (and :class:`TimeoutError` raised) after ``timeout`` seconds."""
        loop = self.loop
        if loop is None or not self.usable or self.on_loop_thread():
            coroutine.close()
            raise RuntimeError("the server's event loop is not running, or this is its thread")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"did not finish on the server's event loop within {timeout:.0f} s") from None

    def run_purge(self, awaitable: Awaitable[Any]) -> Any:
        """The engine's ``coroutine_runner``: an ``async def __mp_purge__`` is awaited on
        the server's loop, where its resources were opened; with no loop running (the
        server stopped), in a loop of its own on this thread."""
        if self.usable and not self.on_loop_thread():

            async def wait() -> Any:
                return await awaitable

            return self.run(wait(), LIFESPAN_TIMEOUT)
        return self._fallback(awaitable)


class Lifespan:
    """One app object's ASGI lifespan (the lifespan protocol 2.0), driven by hotmod on
    the server's loop rather than by the server: startup before the app serves,
    shutdown after its generation drained."""

    def __init__(self, app: Any, number: int) -> None:
        self.app = app
        self.number = number
        #: The lifespan state: the app's startup fills it; each request pinned to this
        #: generation gets a shallow copy as ``scope["state"]``, as servers do.
        self.state: dict[str, Any] = {}
        self.supported = True
        self.running = False  # started and not yet shut down
        self._queue: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[str] | None = None
        self._stopped: asyncio.Future[str] | None = None
        self._lock: asyncio.Lock | None = None
        self._outcome: BaseException | None = None  # a failed startup, kept for lazy starts

    async def ensure_started(self, timeout: float = LIFESPAN_TIMEOUT) -> None:
        """Start once (concurrent callers wait for the one startup); raise if it failed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._task is None:
                try:
                    await self.startup(timeout)
                except BaseException as exc:
                    self._outcome = exc
                    self._outcome_tb = exc.__traceback__
                    raise
            elif self._outcome is not None:
                # Raised again for every later request, from its own traceback each
                # time: raising the object as it is would add this request's frames to
                # it, and keep them, request after request.
                raise self._outcome.with_traceback(self._outcome_tb)

    _outcome_tb: Any = None

    async def startup(self, timeout: float = LIFESPAN_TIMEOUT) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raise if the startup
        failed: ``lifespan.startup.failed``, an exception raised once the app had
        received the startup message, or a timeout. An app that raises before it
        asks for a message (Django's ``ASGIHandler``), or returns without answering,
        does not support lifespans: it serves without one (uvicorn's ``auto`` rule)."""
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._queue.put_nowait({"type": "lifespan.startup"})
        task = self._task = loop.create_task(self._main(), name=f"hotmod-lifespan-{self.number}")
        waited: set[asyncio.Future[Any]] = {self._started, task}
        await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.done() and not task.done():
            task.cancel()
            raise TimeoutError(f"the lifespan startup of generation {self.number} did not finish"
                               f" within {timeout:.0f} s")
        answer = self._started.result() if self._started.done() else "ended"
        if answer == "complete":
            self.running = True
            return
        if answer == "ended":
            if self._outcome is not None and self._received:
                raise self._outcome  # its startup code raised
            self.supported = False
            log.debug("generation %d's app has no lifespan (%r); it serves without", self.number,
                      self._outcome)
            return
        # Failed: frameworks re-raise the exception after answering; its traceback
        # names the line of the startup code, so wait a moment for it.
        await asyncio.wait({task}, timeout=1.0)
        if task.done() and not task.cancelled() and self._outcome is not None:
            raise self._outcome
        raise LifespanFailed(self._failure_message or "lifespan.startup.failed")

    _received = False  # whether the app asked for a lifespan message

    _failure_message = ""

    async def _main(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                        "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._outcome = exc
            started = self._started
            if started is not None and started.done() and started.result() == "complete":
                log.error("the lifespan of generation %d raised after its startup", self.number,
                          exc_info=exc)
        finally:
            self.running = False
            for future in (self._started, self._stopped):
                if future is not None and not future.done():
                    future.set_result("ended")

    async def _receive(self) -> Message:
        assert self._queue is not None
        self._received = True
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if kind == "lifespan.startup.failed":
                self._failure_message = str(message.get("message", ""))
            if self._started is not None and not self._started.done():
                self._started.set_result(kind.rsplit(".", 1)[1])
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind == "lifespan.shutdown.failed":
                log.error("the lifespan shutdown of generation %d failed: %s", self.number,
                          message.get("message", ""))
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(kind.rsplit(".", 1)[1])

    async def shutdown(self, timeout: float = LIFESPAN_TIMEOUT) -> None:
        """Send ``lifespan.shutdown`` and wait (bounded) for the app to finish it."""
        task, queue, stopped = self._task, self._queue, self._stopped
        if not self.running or task is None or queue is None or stopped is None:
            return
        self.running = False
        queue.put_nowait({"type": "lifespan.shutdown"})
        waited: set[asyncio.Future[Any]] = {stopped, task}
        await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not stopped.done() and not task.done():
            log.warning("the lifespan shutdown of generation %d did not finish within %.0f s;"
                        " cancelled", self.number, timeout)
            task.cancel()


class _Connection:
    """What the drain bound needs of one open connection: its task, and how far its
    response went, to end it cleanly."""

    __slots__ = ("accepted", "closed", "ended", "expired", "kind", "started", "task")

    def __init__(self, kind: str, task: asyncio.Task[Any] | None) -> None:
        self.kind = kind
        self.task = task
        self.started = self.ended = self.accepted = self.closed = self.expired = False

    def track(self, send: Send) -> Send:
        async def tracked(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                self.started = True
            elif kind == "http.response.body" and not message.get("more_body", False):
                self.ended = True
            elif kind == "websocket.accept":
                self.accepted = True
            elif kind == "websocket.close":
                self.closed = True
            await send(message)

        return tracked

    async def end(self, send: Send, number: int) -> None:
        """The drain bound passed: end this connection as cleanly as its state allows."""
        try:
            if self.kind == "websocket":
                if not self.closed:
                    await send({"type": "websocket.close", "code": DRAIN_CLOSE_CODE,
                                "reason": f"hotmod: generation {number} retired"})
            elif not self.started:
                await send({"type": "http.response.start", "status": 503,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", b"20")]})
                await send({"type": "http.response.body", "body": b"Service Unavailable\n"})
            elif not self.ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception as exc:  # the client left meanwhile
            log.debug("ending a connection of generation %d: %s", number, exc)


class AsgiSupport(Extension):
    """Runs each new generation's lifespan, and ends it after the generation drained."""

    name = "asgi"

    def __init__(self, owner: AsgiHotReload) -> None:
        self._owner = owner
        self._pending: Lifespan | None = None

    def prepare(self, generation: Generation, plan: Sequence[str]) -> None:
        if not is_asgi(generation.target):
            raise TypeError(
                f"{self._owner.target} is served as an ASGI application, and this edit made it"
                f" {type(generation.target).__name__!r}, which is not one: restart to serve it"
            )
        life = Lifespan(generation.target, generation.number)
        self._owner._lifespans[generation.number] = life
        loop = self._owner._loop
        if loop.usable and not loop.on_loop_thread():
            self._pending = life
            try:
                loop.run(life.startup(), LIFESPAN_TIMEOUT + 1)
            except BaseException:
                self._owner._lifespans.pop(generation.number, None)
                self._pending = None
                raise
        # else: no loop seen yet (no lifespan from the server, no request): the first
        # request of this generation starts it, as a server would have at start-up.

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        self._pending = None
        previous = self._owner._serving
        self._owner._serving = generation.number
        if previous is not None and self._owner._bound is not None:
            self._owner._arm_drain_bound(previous)

    def after_discard(self, plan: Sequence[str]) -> None:
        life, self._pending = self._pending, None
        if life is not None:  # another extension's prepare failed after ours
            self._owner._lifespans.pop(life.number, None)
            self._owner._stop_lifespan(life)

    def retiring(self, generation: Generation) -> None:
        life = self._owner._lifespans.pop(generation.number, None)
        self._owner._connections.pop(generation.number, None)
        if life is not None:
            self._owner._stop_lifespan(life)

    def describe(self) -> dict[str, Any]:
        lifespans = self._owner._lifespans
        return {
            "name": self.name,
            "lifespans": {str(n): ("running" if life.running else
                                   "unsupported" if not life.supported else "not running")
                          for n, life in sorted(lifespans.items())},
        }


class AsgiHotReload(HotReload):
    """:class:`HotReload` serving an ASGI target (see the module's docstring). Made by
    ``HotReload(target)`` itself; never constructed directly."""

    _loop: ServerLoop
    _lifespans: dict[int, Lifespan]
    _connections: dict[int, set[_Connection]]
    _bound: float | None
    _serving: int | None
    _asgi: AsgiSupport

    def _become_asgi(self, drain_timeout: float | None) -> None:
        """Called by ``HotReload.__init__`` once the target is known to be ASGI, before
        the watcher starts."""
        self.__class__ = AsgiHotReload
        self._loop = ServerLoop(self._reloader.coroutine_runner)
        self._lifespans = {}
        self._connections = {}
        self._bound = drain_timeout
        try:
            self._serving = self._reloader.current.number
        except HotmodError:
            self._serving = None
        self._reloader.coroutine_runner = self._loop.run_purge
        self._asgi = AsgiSupport(self)
        self._reloader.extend(self._asgi)

    @property
    def interface(self) -> str:
        return "asgi"

    def _after_fork(self) -> None:
        with self._fork_lock:
            if not self._forked:
                return  # another connection of this child got here first
            # The parent's loop and lifespan tasks are not this process's: each
            # generation's lifespan starts again here, on this child's loop.
            self._loop = ServerLoop(self._loop._fallback)
            self._lifespans = {}
            self._reloader.coroutine_runner = self._loop.run_purge
            self._reloader.check_fork()
            self._forked = False

    # -- the connection path ----------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        kind = scope["type"]
        if kind == "lifespan":
            return await self._serve_lifespan(receive, send)
        if self._forked:
            self._after_fork()
        if self._loop.loop is None:
            self._loop.bind()
        if self._extras:
            if self._scan_at is not None and time.monotonic() >= self._scan_at:
                # Module code never runs on the loop: the scan (and its plan) on a thread.
                await asyncio.to_thread(self._scan)
            if self.debug and self._allowed(scope):
                return await self._call_debug_asgi(scope, receive, send)
            if self.debug and kind == "http" and self._serves_debug_page(_environ_of(scope)):
                return await self._answer(self._refuse_host, scope, send)
        try:
            generation = self._acquire()
        except HotmodError:
            return await self._unavailable_asgi(scope, receive, send)
        try:
            life = self._lifespans.get(generation.number)
            if life is not None and life.running:  # _enter's common case, inlined
                scope[GENERATION_KEY] = generation.number
                scope["state"] = life.state.copy()
            else:
                await self._enter(generation, scope)
            if self._bound is None:
                await generation.target(scope, receive, send)
            else:
                await self._bounded(generation, scope, receive, send)
        finally:
            generation.exit()

    async def _enter(self, generation: Generation, scope: Scope) -> None:
        """Give the request its generation's number and lifespan state; start that
        lifespan first if no one has yet (a server without lifespan events)."""
        scope[GENERATION_KEY] = generation.number
        life = self._lifespans.get(generation.number)
        if life is None:
            life = Lifespan(generation.target, generation.number)
            life = self._lifespans.setdefault(generation.number, life)
        if not life.running:
            if life.supported:
                await life.ensure_started()
            if not life.supported:
                return
        scope["state"] = life.state.copy()

    async def _bounded(self, generation: Generation, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve under the drain bound: the connection is known to the timer that ends
        connections still open on a generation superseded ``drain_timeout`` ago."""
        connection = _Connection(scope["type"], asyncio.current_task())
        number = generation.number
        self._connections.setdefault(number, set()).add(connection)
        try:
            await generation.target(scope, receive, connection.track(send))
        except asyncio.CancelledError:
            if not connection.expired:
                raise
        finally:
            connections = self._connections.get(number)
            if connections is not None:
                connections.discard(connection)
        if connection.expired:  # ended by the bound (the app may have swallowed the cancel)
            task = connection.task
            if task is not None and task.cancelling():
                task.uncancel()
            await connection.end(send, number)

    def _arm_drain_bound(self, number: int) -> None:
        """Generation ``number`` was superseded: end its connections still open after
        ``drain_timeout`` seconds (on the loop; from the reloading thread)."""
        loop, bound = self._loop.loop, self._bound
        if loop is None or bound is None or loop.is_closed():
            return

        def expire() -> None:
            for connection in list(self._connections.get(number, ())):
                if connection.task is not None and not connection.task.done():
                    connection.expired = True
                    connection.task.cancel(f"hotmod: drain_timeout of generation {number}")

        try:
            # A moment before the engine's own bound, which retires the generation and
            # runs its purges: the connections end first, cleanly.
            loop.call_soon_threadsafe(loop.call_later, max(0.0, bound - 0.25), expire)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _stop_lifespan(self, life: Lifespan) -> None:
        """Shut ``life`` down on the loop: waited for from a thread, scheduled from the
        loop itself (it must not block there)."""
        if not life.running or not self._loop.usable:
            return
        if self._loop.on_loop_thread():
            asyncio.get_running_loop().create_task(life.shutdown())
            return
        try:
            self._loop.run(life.shutdown(), LIFESPAN_TIMEOUT + 1)
        except Exception as exc:
            log.error("the lifespan shutdown of generation %d: %s", life.number, exc)

    # -- the server's lifespan ----------------------------------------------------------

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        """The server's own lifespan: at its startup the current generation's app starts
        (and the loop is known from then on); at its shutdown every live generation's
        app shuts down, newest first, then :meth:`close` runs the purge hooks, on a
        thread so that async ones can run on this loop meanwhile."""
        self._loop.bind()
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                generation = self._reloader.current
            except HotmodError:
                generation = None
            if generation is not None:
                try:
                    scope: Scope = {}
                    await self._enter(generation, scope)
                except Exception as exc:
                    log.error("the lifespan startup of generation %d failed", generation.number, exc_info=exc)
                    if self._on_load_error == "raise":
                        why = f"{type(exc).__name__}: {exc}"
                        await send({"type": "lifespan.startup.failed", "message": why})
                        return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            try:
                lives = sorted(self._lifespans.values(), key=lambda life: -life.number)
                await asyncio.gather(*(life.shutdown() for life in lives), return_exceptions=True)
                await asyncio.to_thread(self.close)
            except Exception as exc:
                await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.shutdown.complete"})

    # -- hotmod's own answers -----------------------------------------------------------

    def _allowed(self, scope: Scope) -> bool:
        host = _host_of(scope)
        allowed = self._hosts.seen.get(host)
        return self._hosts.judge(host) if allowed is None else allowed

    async def _call_debug_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Debug mode, allowed host: the status, the error page, the restart page, else
        the app with the generation header, and the traceback page for an exception
        raised before the response started. WebSockets get none of the pages: they are
        served by the current generation (or refused, with none)."""
        kind = scope["type"]
        live = self._live
        if kind == "http":
            path = scope.get("path", "")
            if path == STATUS_PATH:
                return await self._answer(self._serve_status, scope, send)
            if live is not None:
                if path.startswith(LIVE_PREFIX):
                    return await live.serve_asgi(scope, receive, send)
                wanted = _header(scope, b"x-hotmod-live")
                if wanted:  # the page script's own fetch: load what it saw first (off the loop)
                    await asyncio.to_thread(live.catch_up, _int(wanted))
            failure = self._reloader.last_error
            if failure is not None:
                return await self._answer(lambda e, sr: self._serve_error_page(failure, sr, e), scope, send)
            if not self.restarts and self._reloader.restart_needed is not None:
                return await self._answer(lambda e, sr: self._serve_restart_page(sr, e), scope, send)
        try:
            generation = self._acquire()
        except HotmodError:
            return await self._unavailable_asgi(scope, receive, send)
        number = generation.number
        value = str(number).encode()
        started = False

        async def send_with_header(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), (_HEADER, value)]}
            await send(message)

        capture = None
        if live is not None and kind == "http":
            capture = AsgiCapture(send, live, scope, [(_HEADER, value)])
        sender = capture if capture is not None else (send_with_header if kind == "http" else send)
        try:
            await self._enter(generation, scope)
            if self._bound is None:
                await generation.target(scope, receive, sender)
            else:
                await self._bounded(generation, scope, receive, sender)
            if capture is not None:
                await capture.flush()
        except Exception as exc:
            if kind != "http" or started or (capture is not None and capture.started):
                raise
            raised = exc
            await self._answer(lambda e, sr: self._exception_page(raised, e, sr, number, False), scope, send)
        finally:
            generation.exit()

    async def _unavailable_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1011})
            return
        await self._answer(self._unavailable, scope, send)

    async def _answer(self, page: Callable[[dict[str, Any], Any], Any], scope: Scope, send: Send) -> None:
        """Send one of :class:`HotReload`'s own WSGI-shaped answers (status line,
        headers, body) over ASGI: the pages are written once, for both."""
        if scope["type"] != "http":
            return
        head: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            head[:] = [status, headers]

        body = b"".join(page(_environ_of(scope), start_response))
        status, headers = head
        await send({
            "type": "http.response.start",
            "status": int(status.split(" ", 1)[0]),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        })
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _host_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server")
    return str(server[0]) if server else ""


def _environ_of(scope: Scope) -> dict[str, Any]:
    """The few WSGI environ keys hotmod's pages read, from an ASGI scope."""
    server = scope.get("server") or ("", 0)
    return {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": scope.get("path", "/"),
        "HTTP_HOST": _host_of(scope),
        "SERVER_NAME": str(server[0]),
    }
