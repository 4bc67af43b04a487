"""Live reload: open pages follow the generation (debug mode, allowed hosts only).

The engine knows when a generation *serves*: after the swap, never after a mere file
event. :class:`LiveChannel` turns its events into one small state (a clock, a status,
what changed, the failure), and answers a long poll under ``/__hotmod__/live/poll``
whenever that state moves past what the asking page has. The page script
(``_live_assets/live.js``, injected by :func:`inject` into complete HTML responses)
keeps one poll per browser in a SharedWorker, fetches the page and patches its DOM in
place. docs/live-reload.md is the user's account; the contract between this module and
the script is the JSON of :meth:`LiveState.as_json`.

Why a long poll and not a never-ending stream: each answer is a complete response with
its own length, which every WSGI server and proxy delivers at once (waitress and
others buffer a streamed body), and each held request ends by a bound (``hold``
seconds), at the first change, or at once when the server stops or restarts, so it
never holds a request thread for good nor delays ``hotmod serve``'s restart.

The clock is what lets several processes (gunicorn ``-w 2``) agree without talking:
it is built from the mtimes of the files each generation loaded, so two workers that
loaded the same edits show the same clock, and one that is behind shows a lower one
and catches up (reloads what changed on disk) before it answers a page that has seen
more. Threads: the state is replaced whole by the engine's subscriber (the reloading
thread) under ``_cond``; request threads and event loops only read it or wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..reloader import Extension, HotmodError, Reloader, ReloadError, ReloadEvent
from ._errorpage import source_context

log = logging.getLogger("hotmod.middleware")

#: Where everything of live reload is served, below the app's mount point.
LIVE_PREFIX = "/__hotmod__/"
POLL_PATH = LIVE_PREFIX + "live/poll"
#: Request header of the page script's own fetch: the clock it waits for.
LIVE_REQUEST_KEY = "HTTP_X_HOTMOD_LIVE"
#: Response header: the clock of the code that rendered this response.
CLOCK_HEADER = "X-Hotmod-Live-Clock"
#: Seconds a poll with nothing new is held (threaded servers and ASGI).
HOLD_SECONDS = 25.0
#: Polls held at once, at most: a browser holds one, but a poll whose page went away
#: (its worker ended while the poll was held) stays held until the next change. Past
#: this many, the oldest is answered at once, and asked to come back in a second.
MAX_HELD = 16
#: Milliseconds between polls where the server cannot hold one (one request at a
#: time per process, as gunicorn's sync workers).
UNHELD_POLL_MS = 1000
#: Milliseconds before the next poll of one released by :data:`MAX_HELD`, and of one
#: answered because the server stops (the restarted process will answer the next).
RELEASED_POLL_MS = 1000
CLOSING_POLL_MS = 250
#: Responses larger than this are never rewritten.
MAX_INJECT_BYTES = 8 * 1024 * 1024
MODES = ("morph", "reload")
#: Files a change of which the page can take without any module running.
STATIC_SUFFIXES = (".css", ".js", ".mjs")

_ASSETS_DIR = Path(__file__).with_name("_live_assets")
_ASSET_TYPES = {
    "live.js": "text/javascript; charset=utf-8",
    "live-worker.js": "text/javascript; charset=utf-8",
    "live.css": "text/css; charset=utf-8",
}


def live_mode(value: bool | str) -> str | None:
    """The mode ``live_reload=`` asks for: ``"morph"``, ``"reload"``, or None (off)."""
    if value is True:
        return "morph"
    if value is False or value is None:
        return None
    if value in MODES:
        return str(value)
    raise ValueError(f"live_reload must be True, False, 'morph' or 'reload', not {value!r}")


# -- the state ------------------------------------------------------------------------


def _no_changes() -> dict[str, list[str]]:
    return {"modules": [], "templates": [], "static": []}


@dataclass(frozen=True)
class LiveState:
    """What a page needs to know: replaced whole, never edited."""

    clock: int  # microseconds; strictly increasing per process (see the module's doc)
    generation: int
    status: str = "ok"  # "ok" | "failed" | "restart"
    changes: dict[str, list[str]] = field(default_factory=lambda: _no_changes())
    failure: dict[str, Any] | None = None
    restart: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        if self.status == "failed" and self.failure is not None:
            f = self.failure
            digest = zlib.crc32(str(f.get("message")).encode())
            return f"{self.clock}:failed:{f.get('file')}:{f.get('line')}:{digest:x}"
        return f"{self.clock}:{self.status}"

    def as_json(self, *, hold: float, next_ms: int, closing: bool) -> bytes:
        return json.dumps({
            "key": self.key,
            "clock": self.clock,
            "status": self.status,
            "generation": self.generation,
            "pid": os.getpid(),
            "changes": self.changes,
            "failure": self.failure,
            "restart": self.restart,
            "hold": hold,
            "next_ms": next_ms,
            "closing": closing,
        }).encode()


def _mtime_us(paths: Iterable[str]) -> int:
    newest = 0
    for path in paths:
        try:
            newest = max(newest, os.stat(path).st_mtime_ns // 1000)
        except OSError:
            continue
    return newest


def _failure_of(event: ReloadEvent, readable: Callable[[str], bool]) -> dict[str, Any]:
    failure = event.failure
    if failure is None:
        return {"file": None, "line": None, "type": "Error", "message": event.detail, "module": "",
                "generation": event.generation, "excerpt": []}
    file, line = failure.file, failure.line
    # The same lines as the error page, from the same function, and only from a file
    # in the watched roots (the page must not become a way to read any file).
    lines = source_context(file, line) if file and readable(file) else []
    return {
        "file": file,
        "line": line,
        "type": failure.type,
        "message": failure.message,
        "module": failure.module,
        "generation": event.generation,
        "excerpt": [{"line": n, "text": text, "current": n == line} for n, text in lines],
    }


class _Held:
    """One held poll: released early when too many are held; ``wake`` wakes an
    event-loop poll (a thread's wakes on the condition)."""

    __slots__ = ("released", "wake")

    def __init__(self, wake: Callable[[], None] | None) -> None:
        self.released = False
        self.wake = wake


class LiveFiles(Extension):
    """Watches the stylesheets and scripts of the roots: a change of one reaches the
    pages (a ``refreshed`` event) and runs no module."""

    name = "live-reload"

    def extra(self) -> Sequence[str]:
        return tuple(f"*{suffix}" for suffix in STATIC_SUFFIXES)

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        return [p for p in paths if p.endswith(STATIC_SUFFIXES)]


class LiveChannel:
    """The state pages follow, and the polls waiting on it (module doc)."""

    def __init__(
        self, reloader: Reloader, *, mode: str, restarts: bool, watched: bool, hold: float = HOLD_SECONDS
    ) -> None:
        self.mode = mode
        #: Whether a watcher thread delivers this process's edits (else it scans).
        self.watched = watched
        self.hold = hold
        self._reloader = reloader
        self._restarts = restarts
        self._cond = threading.Condition()
        # Replaced whole under _cond; read without it (one attribute read).
        self._state = self._initial_state()
        self._closing = False  # owner: close()
        # The polls held now, oldest first; under _cond.
        self._held: dict[_Held, None] = {}
        self._extended = False
        self._unsubscribe: Callable[[], None] | None = reloader.subscribe(self._on_event)

    def attach_files(self) -> None:
        """Watch stylesheets and scripts (needs a loaded generation: call after load)."""
        if not self._extended:
            self._extended = True
            self._reloader.extend(LiveFiles())

    def _initial_state(self) -> LiveState:
        reloader = self._reloader
        try:
            number = reloader.current.number
        except HotmodError:
            number = 0
        clock = _mtime_us(str(p) for p in reloader.files())
        failure = reloader.last_error
        state = LiveState(clock=clock, generation=number)
        if failure is not None:
            event = ReloadEvent(kind="failed", generation=number, failure=failure)  # type: ignore[arg-type]
            state = replace(state, status="failed", failure=_failure_of(event, reloader.roots.contains))
        return state

    @property
    def state(self) -> LiveState:
        return self._state

    @property
    def waiting(self) -> int:
        """Polls held now."""
        return len(self._held)

    def describe(self) -> dict[str, Any]:
        """The ``live`` part of the status document."""
        state = self._state
        return {"mode": self.mode, "waiting": len(self._held), "clock": state.clock, "key": state.key,
                "status": state.status, "hold": self.hold}

    # -- from the engine (the reloading thread) ---------------------------------------

    def _on_event(self, event: ReloadEvent) -> None:
        kind = event.kind
        state = self._state
        if kind in ("reloaded", "unreached"):
            names = set(event.modules)
            files = [str(p) for p, name in self._reloader.files().items() if name in names]
            changes = {"modules": list(event.modules), "templates": [], "static": []}
            new = LiveState(clock=max(state.clock + 1, _mtime_us(files)), generation=event.generation,
                            changes=changes)
        elif kind == "refreshed":
            static = [f for f in event.files if f.endswith(STATIC_SUFFIXES)]
            templates = [f for f in event.files if not f.endswith(STATIC_SUFFIXES)]
            changes = {"modules": [], "templates": templates, "static": static}
            new = replace(state, clock=max(state.clock + 1, _mtime_us(event.files)), changes=changes)
        elif kind == "failed":
            new = replace(state, status="failed", failure=_failure_of(event, self._reloader.roots.contains),
                          generation=event.generation)
        elif kind == "recovered":
            new = replace(state, status="ok", failure=None)
        elif kind == "restart_needed":
            restart = {"reason": event.detail, "modules": list(event.modules), "restarting": self._restarts}
            new = replace(state, status="restart", restart=restart)
        else:
            return
        self._publish(new)

    def _publish(self, new: LiveState) -> None:
        with self._cond:
            self._state = new
            wakers = [held.wake for held in self._held if held.wake is not None]
            self._cond.notify_all()
        for wake in wakers:
            wake()

    def _hold(self, held: _Held) -> None:
        """Count ``held`` among the held polls (under ``_cond``), releasing the oldest
        when there are too many."""
        if len(self._held) >= MAX_HELD:
            oldest = next(iter(self._held))
            del self._held[oldest]
            oldest.released = True
            if oldest.wake is not None:
                oldest.wake()
            self._cond.notify_all()
        self._held[held] = None

    def close(self) -> None:
        """End every held poll now (they answer ``closing``) and stop following the
        engine. For a restart or a shutdown: nothing waits on a page. Twice is harmless."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._closing = True
        self._publish(self._state)

    # -- catching up (another process may be ahead) -----------------------------------

    def catch_up(self, clock: int) -> None:
        """A page has seen ``clock``, beyond this process's (a worker whose watcher has
        not delivered the edit yet): wait for this process's own watcher to get there,
        at most :data:`CATCH_UP_WAIT` seconds, and only then load what changed on disk
        itself. The watcher first, because it loads a file once its writer closed it,
        where a scan could read a save half written and fail a plan for nothing; the
        scan is for a process with no watcher (``scan_interval``) or a clock no edit
        will reach (a page of a process that restarted, or of another server that had
        this port). Never raises."""
        if clock <= self._state.clock or self._closing:
            return
        if self.watched:
            deadline = time.monotonic() + CATCH_UP_WAIT
            with self._cond:
                while self._state.clock < clock and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if self._state.clock >= clock or self._closing:
                return
        try:
            self._reloader.reload()
        except (ReloadError, HotmodError) as exc:  # logged by the engine; the state says it
            log.debug("catching up to a page's clock: %s", exc)

    def _answers(self, state: LiveState, key: str | None, clock: int) -> bool:
        """Whether a poll from a page at (key, clock) gets ``state`` now."""
        if key is None or self._closing:
            return True
        if key.endswith(":restart") and state.key != key:
            # The page waits for a restart: a restarted process may count from less.
            return True
        return state.clock > clock or (state.clock == clock and state.key != key)

    # -- the poll -----------------------------------------------------------------------

    def _step(self, state: LiveState, key: str | None, clock: int, caught_up: bool) -> str:
        """What a poll from a page at (key, clock) does next: ``"answer"`` with
        ``state``, ``"catch up"`` (this process is behind the page: load what changed,
        once) or ``"wait"``."""
        if self._answers(state, key, clock):
            return "answer"
        if state.clock < clock and not caught_up:
            return "catch up"
        return "wait"

    def wait(
        self, key: str | None, clock: int, hold: float, gone: Callable[[], bool] | None = None
    ) -> tuple[LiveState, int]:
        """Block (a request thread) until the state moves past (key, clock), ``hold``
        seconds pass, the channel closes, too many polls are held or ``gone()`` says
        the client left (asked every :data:`GONE_CHECK_SECONDS`): ``(state, next poll
        in ms)``."""
        deadline = time.monotonic() + hold
        caught_up = False
        with self._cond:
            while True:
                state = self._state
                step = self._step(state, key, clock, caught_up)
                if step == "answer":
                    return state, self._next_ms(hold)
                if step == "catch up":
                    caught_up = True
                    self._cond.release()
                    try:
                        self.catch_up(clock)
                    finally:
                        self._cond.acquire()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return state, self._next_ms(hold)
                held = _Held(None)
                self._hold(held)
                try:
                    self._cond.wait(left if gone is None else min(left, GONE_CHECK_SECONDS))
                finally:
                    self._held.pop(held, None)
                if held.released:
                    return self._state, RELEASED_POLL_MS
                if gone is not None and self._state is state and gone():
                    return state, RELEASED_POLL_MS  # nobody reads it: the thread is free

    async def wait_async(self, key: str | None, clock: int, hold: float) -> tuple[LiveState, int]:
        """:meth:`wait` on an event loop: no thread is held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        caught_up = False
        while True:
            state = self._state
            step = self._step(state, key, clock, caught_up)
            if step == "answer":
                return state, self._next_ms(hold)
            if step == "catch up":
                caught_up = True
                await asyncio.to_thread(self.catch_up, clock)  # module code never on the loop
                continue
            left = deadline - loop.time()
            if left <= 0:
                return state, self._next_ms(hold)
            changed = asyncio.Event()

            def wake(event: asyncio.Event = changed) -> None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # the loop closed meanwhile
                    pass

            held = _Held(wake)
            with self._cond:
                if self._state is not state or self._closing:
                    continue
                self._hold(held)
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                pass
            finally:
                with self._cond:
                    self._held.pop(held, None)
            if held.released:
                return self._state, RELEASED_POLL_MS

    def _next_ms(self, hold: float) -> int:
        """When the page should poll next: at once, or in a moment where the server
        is stopping (the restarted one answers) or holds nothing."""
        if self._closing:
            return CLOSING_POLL_MS
        return 0 if hold > 0 else UNHELD_POLL_MS

    # -- answers shared by WSGI and ASGI -------------------------------------------------

    def poll_args(self, query: str) -> tuple[str | None, int]:
        args = parse_qs(query)
        key = args.get("key", [None])[0]
        try:
            clock = int(args.get("clock", ["0"])[0])
        except ValueError:
            clock = 0
        return key, clock

    def poll_body(self, state: LiveState, next_ms: int, hold: float) -> bytes:
        return state.as_json(hold=hold, next_ms=next_ms, closing=self._closing)

    # -- WSGI --------------------------------------------------------------------------

    def serve_wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Answer a request below ``/__hotmod__/``: an asset or the poll (else 404)."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"", [("Allow", "GET, HEAD")])
        if path == POLL_PATH:
            key, clock = self.poll_args(environ.get("QUERY_STRING", ""))
            hold = self.hold if environ.get("wsgi.multithread", False) else 0.0
            state, next_ms = self.wait(key, clock, hold, _gone_check(environ))
            body = self.poll_body(state, next_ms, hold)
            return _plain(start_response, "200 OK", b"" if method == "HEAD" else body,
                          [("Content-Type", "application/json")], length=len(body))
        asset = asset_of(path)
        if asset is None:
            return _plain(start_response, "404 Not Found", b"not found\n", [("Content-Type", "text/plain")])
        body, content_type = asset
        return _plain(start_response, "200 OK", b"" if method == "HEAD" else body,
                      [("Content-Type", content_type)], length=len(body))

    # -- ASGI --------------------------------------------------------------------------

    async def serve_asgi(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            status, body, headers = 405, b"", [("Allow", "GET, HEAD")]
        elif path == POLL_PATH:
            key, clock = self.poll_args(scope.get("query_string", b"").decode("latin-1"))
            waiting = asyncio.ensure_future(self.wait_async(key, clock, self.hold))
            # The client leaving (its tab closed or reloaded) ends the wait: no poll is
            # held for a page that is not there.
            left = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait((waiting, left), return_when=asyncio.FIRST_COMPLETED)
            finally:  # the client left, or this task was cancelled: the poll is unheld
                left.cancel()
                if not waiting.done():
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
            if waiting.cancelled():
                return
            state, next_ms = waiting.result()
            body = self.poll_body(state, next_ms, self.hold)
            status, headers = 200, [("Content-Type", "application/json")]
        else:
            asset = asset_of(path)
            if asset is None:
                status, body, headers = 404, b"not found\n", [("Content-Type", "text/plain")]
            else:
                status, (body, content_type) = 200, asset
                headers = [("Content-Type", content_type)]
        length = len(body)
        if method == "HEAD":
            body = b""
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1"))
               for k, v in [*headers, ("Content-Length", str(length)), *_NO_CACHE]]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    # -- the tag ---------------------------------------------------------------------

    def tag(self, base: str, *, nonce: str | None = None, page: str | None = None) -> bytes:
        """The script tag for a page rendered now, below the mount point ``base``."""
        state = self._state
        prefix = _attr(base.rstrip("/") + LIVE_PREFIX)
        extra = f' nonce="{_attr(nonce)}"' if nonce else ""
        if page:
            extra += f' data-hotmod-page="{_attr(page)}"'
        return (
            f'<script src="{prefix}live.js" data-hotmod-base="{prefix}" data-hotmod-key="{_attr(state.key)}"'
            f' data-hotmod-clock="{state.clock}" data-hotmod-mode="{self.mode}"{extra} async></script>'
        ).encode()


#: Seconds a request from a page that saw a newer clock waits for this process's own
#: watcher before it scans the files itself.
CATCH_UP_WAIT = 1.0

#: Seconds between looks at whether a held poll's client is still there.
GONE_CHECK_SECONDS = 1.0


def _gone_check(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """A test of whether the client of this request closed its connection, where the
    server hands the socket over (werkzeug's and gunicorn's do): a tab that reloads
    or closes while its poll is held must not leave a thread waiting for it."""
    sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return None

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except ValueError:  # TLS sockets take no flags: cannot tell, so not gone
            return False
        except OSError:
            return True

    return gone


async def _disconnected(receive: Callable[..., Any]) -> None:
    """Return once the ASGI server says the client left. Servers answer ``receive()``
    with the request's body, then with ``http.disconnect`` when it comes; one that
    answers with more after the body's end is not watched (it would only spin)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message["type"] == "http.request" and not message.get("more_body", False):
            break
    message = await receive()
    if message["type"] == "http.disconnect":
        return
    await asyncio.Event().wait()  # cancelled when the poll is answered


# -- assets ---------------------------------------------------------------------------

_asset_cache: dict[str, tuple[bytes, str]] = {}


def asset_of(path: str) -> tuple[bytes, str] | None:
    """``(body, content type)`` of a live-reload asset at ``path``, or None."""
    if not path.startswith(LIVE_PREFIX):
        return None
    name = path[len(LIVE_PREFIX):]
    content_type = _ASSET_TYPES.get(name)
    if content_type is None:
        return None
    cached = _asset_cache.get(name)
    if cached is None:
        cached = _asset_cache[name] = ((_ASSETS_DIR / name).read_bytes(), content_type)
    return cached


_NO_CACHE = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


def _plain(
    start_response: Callable[..., Any], status: str, body: bytes, headers: list[tuple[str, str]],
    *, length: int | None = None,
) -> list[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body) if length is None else length)),
                            *_NO_CACHE])
    return [body] if body else []


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


# -- injection ------------------------------------------------------------------------

_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")
_ASCII_SAFE = {"utf-8", "utf8", "ascii", "us-ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252",
               "cp1252", "iso-8859-15"}


def injectable(status: int, headers: Iterable[tuple[str, str]], method: str) -> int | None:
    """The declared length of a response the tag may go into, or None to leave it
    alone: HTML, complete (a declared length), uncompressed, not HEAD, not a status
    without a body, not a download, not too large."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return None
    length: int | None = None
    html = False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-type":
            media, _, params = value.partition(";")
            if media.strip().lower() != "text/html":
                return None
            charset = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.I)
            if charset is not None and charset.group(1).lower() not in _ASCII_SAFE:
                return None
            html = True
        elif lower == "content-length":
            try:
                length = int(value)
            except ValueError:
                return None
        elif lower == "content-encoding":
            if value.strip().lower() not in ("", "identity"):
                return None
        elif lower == "content-disposition":
            if value.strip().lower().startswith("attachment"):
                return None
        elif lower == "transfer-encoding":
            return None
    if not html or length is None or length > MAX_INJECT_BYTES:
        return None
    return length


def nonce_of(headers: Iterable[tuple[str, str]]) -> str | None:
    """A script nonce the response's Content-Security-Policy allows, if any."""
    for name, value in headers:
        if name.lower() != "content-security-policy":
            continue
        for directive in value.split(";"):
            words = directive.strip().split(None, 1)
            if len(words) == 2 and words[0].lower() in ("script-src", "script-src-elem", "default-src"):
                found = _NONCE.search(words[1])
                if found:
                    return found.group(1)
    return None


def inject(body: bytes, tag: bytes) -> bytes | None:
    """``body`` with ``tag`` before its last ``</body>`` (else its last ``</html>``), or
    None when it has neither (a fragment: an htmx partial, say, is left alone)."""
    lower = body.lower()
    at = lower.rfind(b"</body")
    if at < 0:
        at = lower.rfind(b"</html")
    if at < 0:
        return None
    return body[:at] + tag + body[at:]


def with_length(headers: Iterable[tuple[str, str]], length: int, clock: int) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() != "content-length"]
    out.append(("Content-Length", str(length)))
    out.append((CLOCK_HEADER, str(clock)))
    return out


_ORIGIN_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def live_origin(environ: dict[str, Any]) -> str | None:
    """``scheme://host`` of the request, for a policy that names the live files
    exactly; None when the Host header is no plain host (no policy is built from it)."""
    host = environ.get("HTTP_HOST") or ""
    scheme = environ.get("wsgi.url_scheme", "http")
    if scheme not in ("http", "https") or not _ORIGIN_HOST.fullmatch(host):
        return None
    return f"{scheme}://{host}"


def page_policy(policy: str, mount: str) -> str:
    """hotmod's own page policy (no script at all), letting in exactly the live
    script, its worker, its poll and its stylesheet, by their full URLs below
    ``mount`` (origin and mount point), and nothing else."""
    base = mount.rstrip("/") + LIVE_PREFIX
    widened = policy.replace(
        "default-src 'none';",
        f"default-src 'none'; script-src {base}live.js {base}live-worker.js; worker-src {base}live-worker.js;"
        f" connect-src {base}live/poll;",
        1,
    )
    return widened.replace("style-src ", f"style-src {base}live.css ", 1)


def requested_clock(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class WsgiCapture:
    """The ``start_response`` an application gets in debug mode: it adds ``extra``
    headers and, for a response the tag may go into (:func:`injectable`), defers the
    server's ``start_response`` until :meth:`finish` has read the body."""

    def __init__(
        self, start_response: Callable[..., Any], extra: list[tuple[str, str]], method: str, *, inject: bool
    ) -> None:
        self.start_response = start_response
        self.extra = extra
        self.method = method
        self.started = False
        self.deferring = inject  # until the application returned
        self.held: tuple[str, list[tuple[str, str]], Any, int] | None = None
        self.writes: list[bytes] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.started = True
        if self.deferring:
            try:
                code = int(status[:3])
            except ValueError:
                code = 0
            length = injectable(code, headers, self.method)
            if length is not None:
                self.held = (status, headers, exc_info, length)
                return self.writes.append
        self.held = None
        # A copy: the application's list may be a module-level constant.
        return self.start_response(status, [*headers, *self.extra], exc_info)

    def finish(
        self, result: Iterable[bytes], channel: LiveChannel, environ: dict[str, Any]
    ) -> Iterable[bytes]:
        """The response, with the tag where it fits: the body read whole (its declared
        length, at most :data:`MAX_INJECT_BYTES`) and ``result`` closed. A file wrapper
        or a body that is not the length it declared goes out untouched."""
        assert self.held is not None
        status, headers, exc_info, length = self.held
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(result, wrapper):
            write = self.start_response(status, [*headers, *self.extra], exc_info)
            for chunk in self.writes:
                write(chunk)
            return result
        chunks, size = list(self.writes), sum(map(len, self.writes))
        try:
            for chunk in result:
                chunks.append(chunk)
                size += len(chunk)
                if size > length:
                    break
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = b"".join(chunks)
        tag = channel.tag(environ.get("SCRIPT_NAME", ""), nonce=nonce_of(headers))
        new = inject(body, tag) if size == length else None
        if new is None:
            self.start_response(status, [*headers, *self.extra], exc_info)
            return [body]
        fixed = with_length(headers, len(new), channel.state.clock)
        self.start_response(status, [*fixed, *self.extra], exc_info)
        return [new]


class AsgiCapture:
    """The ASGI ``send`` of the same: adds ``extra`` headers to the response start and
    holds an injectable response until its last body message."""

    def __init__(
        self, send: Callable[..., Any], channel: LiveChannel, scope: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        self.send = send
        self.channel = channel
        self.scope = scope
        self.extra = extra
        self.started = False
        self.held: dict[str, Any] | None = None
        self.length = 0
        self.chunks: list[bytes] = []
        self.size = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            raw = message.get("headers", ())
            headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in raw]
            length = injectable(int(message["status"]), headers, self.scope.get("method", "GET"))
            if length is not None and not message.get("trailers"):
                self.held, self.length = {**message, "headers": headers}, length
                return
            await self.send({**message, "headers": [*raw, *self.extra]})
            return
        if self.held is not None and kind == "http.response.body":
            body = message.get("body", b"")
            self.chunks.append(body)
            self.size += len(body)
            if self.size <= self.length and message.get("more_body", False):
                return
            await self._release(complete=not message.get("more_body", False))
            return
        if self.held is not None:  # pathsend and the like: not ours to rewrite
            await self._release(complete=False)
        await self.send(message)

    async def _release(self, *, complete: bool) -> None:
        held, self.held = self.held, None
        assert held is not None
        headers: list[tuple[str, str]] = held["headers"]
        body = b"".join(self.chunks)
        self.chunks = []
        new = None
        if complete and self.size == self.length:
            tag = self.channel.tag(self.scope.get("root_path", ""), nonce=nonce_of(headers))
            new = inject(body, tag)
        if new is not None:
            headers, body = with_length(headers, len(new), self.channel.state.clock), new
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await self.send({**held, "headers": [*raw, *self.extra]})
        await self.send({"type": "http.response.body", "body": body, "more_body": not complete})

    async def flush(self) -> None:
        """The application returned: a response still held goes out as it is."""
        if self.held is not None:
            await self._release(complete=False)


__all__ = [
    "CLOCK_HEADER",
    "LIVE_PREFIX",
    "LiveChannel",
    "LiveState",
    "inject",
    "injectable",
    "live_mode",
    "live_origin",
    "nonce_of",
    "page_policy",
]
