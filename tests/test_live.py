"""Live reload, the server's side (docs/live-reload.md): what goes into a response and
what is left alone, the long poll that pages follow, and what it says after a swap, a
failed plan, a fix and a stylesheet edit. In-process, WSGI and ASGI; the browser's side
is proved in real Chromium by tests/integration/test_live_browser.py.

Apps are real modules in the ``project`` root. ``scan_interval=3600``: no watcher, so
only ``reload()`` makes a generation.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import serving, write
from werkzeug.test import Client
from werkzeug.wsgi import FileWrapper

from hotmod.middleware import HotReload
from hotmod.middleware._live import CLOCK_HEADER, MAX_HELD, POLL_PATH, inject, injectable, nonce_of
from hotmod.reloader import ReloadError

PAGE = b"<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"

# One app, many responses: the query string picks the case.
APP = '''
import gzip
VERSION = {version!r}
HEAD = b"<!doctype html><html><head><title>t</title></head>"
PAGE = HEAD + b"<body><p>" + VERSION.encode() + b"</p></body></html>"


def app(environ, start_response):
    case = environ.get("QUERY_STRING", "")
    html = [("Content-Type", "text/html; charset=utf-8")]
    if case == "stream":  # no declared length: a stream
        start_response("200 OK", html)
        return iter([PAGE[:20], PAGE[20:]])
    if case == "gzip":
        body = gzip.compress(PAGE, mtime=0)
        start_response("200 OK", [*html, ("Content-Encoding", "gzip"), ("Content-Length", str(len(body)))])
        return [body]
    if case == "json":
        body = b'{{"body": "</body>"}}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if case == "304":
        start_response("304 Not Modified", [("Content-Type", "text/html")])
        return []
    if case == "download":
        start_response("200 OK", [*html, ("Content-Disposition", "attachment; filename=p.html"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    if case == "fragment":  # an htmx partial: no </body>, no </html>
        body = b"<li>item</li>"
        start_response("200 OK", [*html, ("Content-Length", str(len(body)))])
        return [body]
    if case == "utf16":
        body = PAGE.decode().encode("utf-16")
        utf16 = [("Content-Type", "text/html; charset=utf-16"), ("Content-Length", str(len(body)))]
        start_response("200 OK", utf16)
        return [body]
    if case == "lying":  # declares more than it sends
        start_response("200 OK", [*html, ("Content-Length", str(len(PAGE) + 10))])
        return [PAGE]
    if case == "file":
        import io
        start_response("200 OK", [*html, ("Content-Length", str(len(PAGE)))])
        return environ["wsgi.file_wrapper"](io.BytesIO(PAGE))
    if case == "nonce":
        start_response("200 OK", [*html, ("Content-Length", str(len(PAGE))),
                                  ("Content-Security-Policy", "script-src 'nonce-abc123' 'strict-dynamic'")])
        return [PAGE]
    if case == "generator":  # a complete page from a generator, as werkzeug's responses are
        def body():
            yield PAGE[:30]
            yield PAGE[30:]
        start_response("200 OK", [*html, ("Content-Length", str(len(PAGE)))])
        return body()
    start_response("200 OK", [*html, ("Content-Length", str(len(PAGE)))])
    return [PAGE]
'''

LEFT_ALONE = ["stream", "gzip", "json", "304", "download", "fragment", "utf16", "lying", "file"]


@pytest.fixture
def page_app(project: Path, apps: list[HotReload]) -> Iterator[Path]:
    path = project / "hm_live_app.py"
    write(path, APP.format(version="v1"))
    yield path


def make(apps: list[HotReload], **options: Any) -> HotReload:
    options.setdefault("debug", True)
    app = HotReload("hm_live_app:app", scan_interval=3600, **options)
    apps.append(app)
    return app


def get(app: Any, query: str = "", *, method: str = "GET", host: str = "localhost", **env: Any) -> Any:
    environ = {"wsgi.file_wrapper": FileWrapper, "wsgi.multithread": True, **env}
    return Client(app).open("/", method=method, query_string=query, headers={"Host": host},
                            environ_overrides=environ, buffered=True)


def poll(app: Any, key: str | None = None, clock: int = 0, **env: Any) -> dict[str, Any]:
    query = "" if key is None else f"key={key}&clock={clock}"
    environ = {"wsgi.multithread": True, **env}
    response = Client(app).get(POLL_PATH, query_string=query, environ_overrides=environ, buffered=True)
    assert response.status_code == 200, response.get_data()[:300]
    assert response.headers["Cache-Control"] == "no-store"
    return json.loads(response.get_data())  # type: ignore[no-any-return]


def tag_attrs(body: bytes) -> dict[str, str]:
    start = body.index(b"<script src=")
    tag = body[start:body.index(b"</script>", start)].decode()
    return dict(part.split("=", 1) for part in tag.replace('"', "").split()[1:] if "=" in part)


# -- the injection --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["", "generator"])
def test_a_complete_html_page_gets_the_tag_before_its_body_ends_and_a_true_length(
    page_app: Path, apps: list[HotReload], case: str
) -> None:
    app = make(apps)
    response = get(app, case)
    body = response.get_data()
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(body)
    assert body.count(b"<script") == 1
    assert body.endswith(b"></script></body></html>")
    assert body.replace(body[body.index(b"<script"):body.index(b"</body>")], b"") == PAGE.replace(
        b"hello", b"v1")
    attrs = tag_attrs(body)
    state = poll(app)
    assert attrs["src"] == "/__hotmod__/live.js" and attrs["data-hotmod-base"] == "/__hotmod__/"
    assert (attrs["data-hotmod-key"], int(attrs["data-hotmod-clock"])) == (state["key"], state["clock"])
    assert response.headers[CLOCK_HEADER] == str(state["clock"])
    # The script is served from there, same origin, so a page's `script-src 'self'` runs it.
    script = Client(app).get("/__hotmod__/live.js", headers={"Host": "localhost"})
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize("case", LEFT_ALONE)
def test_responses_the_tag_must_not_touch_go_out_byte_for_byte(
    page_app: Path, apps: list[HotReload], case: str
) -> None:
    live, off = make(apps), make(apps, live_reload=False)
    a, b = get(live, case), get(off, case)
    assert (a.status_code, a.get_data()) == (b.status_code, b.get_data())
    assert b"hotmod" not in a.get_data()
    assert a.headers.get("Content-Length") == b.headers.get("Content-Length")
    assert CLOCK_HEADER not in a.headers
    if case == "gzip":
        assert gzip.decompress(a.get_data()).endswith(b"</p></body></html>")


def test_a_head_request_is_answered_as_without_live_reload(page_app: Path, apps: list[HotReload]) -> None:
    live, off = make(apps), make(apps, live_reload=False)
    a, b = get(live, method="HEAD"), get(off, method="HEAD")
    assert a.get_data() == b.get_data() and b"<script" not in a.get_data()  # the server drops it
    length = str(len(PAGE.replace(b"hello", b"v1")))
    assert a.headers["Content-Length"] == b.headers["Content-Length"] == length


def test_production_a_foreign_host_and_live_reload_off_add_not_one_byte(
    page_app: Path, apps: list[HotReload]
) -> None:
    bare = get(_bare_app(), "")
    for app, host in ((make(apps, debug=False), "localhost"), (make(apps), "evil.example"),
                      (make(apps, live_reload=False), "localhost")):
        response = get(app, "", host=host)
        assert response.get_data() == bare.get_data()
        headers = {k: v for k, v in response.headers.items() if k != "X-Hotmod-Generation"}
        assert headers == dict(bare.headers.items())
    production = make(apps, debug=False)
    assert Client(production).get("/__hotmod__/live.js").get_data() == bare.get_data()  # the app's own


def _bare_app() -> Any:
    import hm_live_app  # type: ignore[import-not-found]

    return hm_live_app.app


def test_a_script_nonce_of_the_pages_policy_goes_on_the_tag(page_app: Path, apps: list[HotReload]) -> None:
    body = get(make(apps), "nonce").get_data()
    assert tag_attrs(body)["nonce"] == "abc123"
    policy = "default-src 'self'; script-src 'nonce-Zz9+/='"
    assert nonce_of([("Content-Security-Policy", policy)]) == "Zz9+/="
    assert nonce_of([("Content-Security-Policy", "style-src 'nonce-x'")]) is None


def test_the_rules_of_injection_in_isolation() -> None:
    html = [("Content-Type", "text/html"), ("Content-Length", "10")]
    assert injectable(200, html, "GET") == 10
    assert injectable(404, html, "GET") == 10  # the app's own error pages follow too
    assert injectable(200, html, "HEAD") is None
    assert injectable(204, html, "GET") is None
    assert injectable(200, [("Content-Type", "text/html")], "GET") is None
    assert injectable(200, [*html, ("Transfer-Encoding", "chunked")], "GET") is None
    assert injectable(200, [("Content-Type", "text/html"), ("Content-Length", str(9 * 2**20))], "GET") is None
    assert inject(b"<p>a</p></BODY>\n</html>", b"<s>") == b"<p>a</p><s></BODY>\n</html>"
    assert inject(b"<p>frag</p>", b"<s>") is None


# -- the poll ---------------------------------------------------------------------------------


def test_a_first_poll_answers_at_once_with_the_state(page_app: Path, apps: list[HotReload]) -> None:
    state = poll(make(apps))
    assert state["status"] == "ok" and state["generation"] == 1 and state["failure"] is None
    assert state["clock"] >= page_app.stat().st_mtime_ns // 1000
    assert (state["hold"], state["next_ms"], state["closing"]) == (25.0, 0, False)


def test_a_held_poll_answers_when_the_next_generation_serves_with_what_changed(
    page_app: Path, apps: list[HotReload]
) -> None:
    app = make(apps)
    first = poll(app)
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(poll(app, first["key"], first["clock"])))
    waiter.start()
    _until(lambda: app.live is not None and app.live.waiting == 1)
    assert answers == []  # held: nothing new yet
    write(page_app, APP.format(version="v2"))
    assert app.reload() == 2
    waiter.join(10)
    [state] = answers
    assert state["generation"] == 2 and state["clock"] > first["clock"]
    assert state["changes"] == {"modules": ["hm_live_app"], "templates": [], "static": []}
    # The page fetched now is the new code, tagged with the new clock.
    assert b"v2" in get(app).get_data() and tag_attrs(get(app).get_data())["data-hotmod-key"] == state["key"]


def test_a_held_poll_ends_after_its_hold_and_at_once_when_the_server_stops(
    page_app: Path, apps: list[HotReload]
) -> None:
    app = make(apps)
    assert app.live is not None
    app.live.hold = 0.2
    first = poll(app)
    began = time.monotonic()
    again = poll(app, first["key"], first["clock"])
    assert again["key"] == first["key"] and time.monotonic() - began >= 0.2
    app.live.hold = 60.0
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(poll(app, first["key"], first["clock"])))
    waiter.start()
    _until(lambda: app.live is not None and app.live.waiting == 1)
    app.end_live_polls()  # what hotmod serve does before a restart or a shutdown
    waiter.join(10)
    assert not waiter.is_alive() and answers[0]["closing"] is True and answers[0]["next_ms"] > 0


def test_past_the_most_polls_held_the_oldest_is_answered_and_asked_back_later(
    page_app: Path, apps: list[HotReload]
) -> None:
    # A poll whose page went away stays held until the next change: many reloads of
    # a page would pile them up, a thread each, without this bound.
    app = make(apps)
    assert app.live is not None
    first = poll(app)
    answers: list[tuple[int, dict[str, Any]]] = []

    def held(i: int) -> None:
        answers.append((i, poll(app, first["key"], first["clock"])))

    live = app.live
    waiters = []
    for i in range(MAX_HELD + 1):
        waiters.append(threading.Thread(target=held, args=(i,)))
        waiters[-1].start()
        expected = min(i + 1, MAX_HELD)
        _until(lambda n=expected: bool(answers) or live.waiting == n)
    _until(lambda: len(answers) == 1)
    assert [(i, a["next_ms"], a["key"]) for i, a in answers] == [(0, 1000, first["key"])]
    assert live.waiting == MAX_HELD
    app.end_live_polls()
    for waiter in waiters:
        waiter.join(10)
    assert len(answers) == MAX_HELD + 1


def test_a_held_poll_whose_client_left_frees_its_thread(page_app: Path, apps: list[HotReload]) -> None:
    # A tab that reloads or closes while its worker's poll is held: the server sees
    # the connection closed and stops holding, rather than wait for the next change.
    app = make(apps)
    live = app.live
    assert live is not None
    first = poll(app)
    with serving(app) as port:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        query = f"key={first['key']}&clock={first['clock']}"
        client.sendall(f"GET {POLL_PATH}?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        _until(lambda: live.waiting == 1)
        client.close()
        _until(lambda: live.waiting == 0, timeout=5)  # checked every second, held for 25


def test_a_page_waiting_for_a_restart_takes_a_restarted_processs_lower_clock_at_once(
    page_app: Path, apps: list[HotReload]
) -> None:
    app = make(apps)
    state = poll(app)
    began = time.monotonic()
    answer = poll(app, f"{state['clock'] + 50}:restart", state["clock"] + 50)
    assert answer["key"] == state["key"] and time.monotonic() - began < 5


def test_a_server_with_one_request_at_a_time_is_polled_not_held(
    page_app: Path, apps: list[HotReload]
) -> None:
    app = make(apps)
    first = poll(app, **{"wsgi.multithread": False})
    began = time.monotonic()
    again = poll(app, first["key"], first["clock"], **{"wsgi.multithread": False})
    assert time.monotonic() - began < 5  # not held for its 25 s
    assert (again["hold"], again["next_ms"], again["key"]) == (0.0, 1000, first["key"])


def test_a_failed_plan_is_announced_with_file_line_and_excerpt_and_the_fix_moves_on(
    page_app: Path, apps: list[HotReload]
) -> None:
    app = make(apps)
    first = poll(app)
    write(page_app, APP.format(version="v2").replace("def app(environ, start_response):", "def app(environ:"))
    with pytest.raises(ReloadError):
        app.reload()
    failed = poll(app, first["key"], first["clock"])
    failure = failed["failure"]
    assert (failed["status"], failed["clock"], failed["generation"]) == ("failed", first["clock"], 1)
    assert failure["file"] == str(page_app) and failure["type"] == "SyntaxError"
    lines = page_app.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "def app(environ:" in text)
    assert failure["line"] == line
    current = [row for row in failure["excerpt"] if row["current"]]
    assert [row["text"] for row in current] == ["def app(environ:"]
    # Every page fetched meanwhile is the error page, which follows the fix too.
    page = get(app)
    assert page.status_code == 500 and tag_attrs(page.get_data())["data-hotmod-page"] == "hotmod"
    write(page_app, APP.format(version="v3"))
    assert app.reload() == 2
    fixed = poll(app, failed["key"], failed["clock"])
    assert fixed["status"] == "ok" and fixed["failure"] is None and fixed["clock"] > failed["clock"]


def test_a_stylesheet_edit_is_announced_as_static_without_a_new_generation(
    page_app: Path, project: Path, apps: list[HotReload]
) -> None:
    css = project / "static" / "site.css"
    write(css, "p { color: red }")
    app = make(apps)
    first = poll(app)
    write(css, "p { color: blue }")
    assert app.reloader.reload([css]) == 1  # refreshed, no module ran
    state = poll(app, first["key"], first["clock"])
    assert state["changes"] == {"modules": [], "templates": [], "static": [str(css.resolve())]}
    assert state["generation"] == 1 and state["clock"] > first["clock"]


def test_a_page_that_saw_a_newer_clock_makes_this_process_catch_up(
    page_app: Path, apps: list[HotReload]
) -> None:
    # Another worker of the same server loaded the edit and told the page: this one,
    # whose watcher has not seen it yet, loads it before answering the page's fetch.
    app = make(apps)
    first = poll(app)
    write(page_app, APP.format(version="v2"))
    ahead = first["clock"] + 10**9
    response = get(app, HTTP_X_HOTMOD_LIVE=str(ahead))
    assert b"v2" in response.get_data() and app.generation == 2


def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# -- ASGI ------------------------------------------------------------------------------------

ASGI_APP = '''
VERSION = {version!r}
PAGE = b"<html><body><p>" + VERSION.encode() + b"</p></body></html>"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            else:
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    streamed = scope["path"] == "/stream"
    headers = [(b"content-type", b"text/html")]
    if not streamed:
        headers.append((b"content-length", str(len(PAGE)).encode()))
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": PAGE[:10], "more_body": True}})
    await send({{"type": "http.response.body", "body": PAGE[10:]}})
'''


def test_asgi_pages_get_the_tag_streams_do_not_and_the_poll_holds_on_the_loop(
    project: Path, apps: list[HotReload]
) -> None:
    path = project / "hm_live_asgi.py"
    write(path, ASGI_APP.format(version="v1"))
    app = HotReload("hm_live_asgi:app", debug=True, scan_interval=3600)
    apps.append(app)
    assert app.interface == "asgi"

    async def request(target: str, query: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": target, "raw_path": target.encode(), "query_string": query,
                 "root_path": "", "headers": [(b"host", b"localhost")], "state": {}}
        await asyncio.wait_for(app(scope, receive, send), 30)
        headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])

    async def scenario() -> None:
        status, headers, body = await request("/")
        assert status == 200 and int(headers["content-length"]) == len(body)
        assert body.endswith(b"async></script></body></html>") and b"v1" in body
        _, _, streamed = await request("/stream")
        assert streamed == b"<html><body><p>v1</p></body></html>"
        _, _, raw = await request(POLL_PATH)
        first = json.loads(raw)
        query = f"key={first['key']}&clock={first['clock']}".encode()
        held = asyncio.ensure_future(request(POLL_PATH, query))
        for _ in range(1000):
            if app.live is not None and app.live.waiting == 1:
                break
            await asyncio.sleep(0.005)
        assert app.live is not None and app.live.waiting == 1 and not held.done()
        # A poll whose client leaves is not held for it (the server says http.disconnect).
        left = asyncio.Event()
        received = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive() -> dict[str, Any]:
            for message in received:
                return message
            await left.wait()
            return {"type": "http.disconnect"}

        async def ignore(message: dict[str, Any]) -> None:
            raise AssertionError(f"nothing is sent to a client that left: {message}")

        scope = {"type": "http", "method": "GET", "path": POLL_PATH, "root_path": "",
                 "query_string": query, "headers": [(b"host", b"localhost")]}
        orphan = asyncio.ensure_future(app(scope, receive, ignore))
        for _ in range(1000):
            if app.live.waiting == 2:
                break
            await asyncio.sleep(0.005)
        assert app.live.waiting == 2
        left.set()
        await asyncio.wait_for(orphan, 10)
        assert app.live.waiting == 1 and not held.done()

        write(path, ASGI_APP.format(version="v2"))
        assert await asyncio.to_thread(app.reload) == 2  # the plan off the loop, as the watcher does
        _, _, raw = await asyncio.wait_for(held, 10)
        state = json.loads(raw)
        assert state["generation"] == 2 and state["changes"]["modules"] == ["hm_live_asgi"]

    asyncio.run(scenario())
