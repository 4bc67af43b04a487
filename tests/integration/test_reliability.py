"""Reliability (issue 7): reloads under load, faults and hostile edits, real servers.

Servers bind 127.0.0.1 on free ports; the watched files are real files in tmp_path;
the pooled module talks to the real PostgreSQL (``pg_dsn``). The long versions of the
load, in-place and stream cases are ``@pytest.mark.slow`` and also run as
``python -m bench.stress``; these tests run that program with shorter settings, in a
process of its own (``support.run_stress``), and assert on its rows.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import Served, call, free_port, module_source, run_stress, serving, wait_until
from support import write as store

from hotmod.middleware import GENERATION_HEADER, STATUS_PATH, HotReload
from hotmod.reloader import Reloader, ReloadError

BIN = Path(sys.executable).parent


def write(path: Path, text: str) -> Path:
    store(path, text)
    return path


@pytest.fixture
def make_app(project: Path, apps: list[HotReload]) -> Callable[..., HotReload]:
    def make(target: str = "rel.app:app", **options: Any) -> HotReload:
        options.setdefault("watch", project / "rel")
        options.setdefault("scan_interval", 3600)  # only app.reload() makes generations
        app = HotReload(target, **options)
        apps.append(app)
        return app

    return make


def package(project: Path, app_source: str, **modules: str) -> Path:
    root = project / "rel"
    write(root / "__init__.py", "")
    for name, text in modules.items():
        write(root / f"{name}.py", text)
    write(root / "app.py", app_source)
    return root


def stream_app(project: Path, version: str) -> str:
    # It keeps purged.txt and reads data.bin beside its package, that is in project.
    return module_source("stream_app", VERSION=version)


def purged(project: Path) -> list[str]:
    path = project / "purged.txt"
    return path.read_text().split() if path.exists() else []


# -- load + reloads ---------------------------------------------------------------------


@pytest.mark.postgres
def test_eight_clients_through_60_edits_a_fifth_broken_or_faulty_see_only_good_whole_generations(
    pg_dsn: str, tmp_path: Path
) -> None:
    row = run_stress("load", tmp_path, timeout=120, seconds=10, edits=60, threads=8, dsn=pg_dsn)
    assert row["failures"] == {}, row["table"]
    notes, start, end = row["notes"], row["start"], row["end"]
    assert notes["failed plans"] > 0 and notes["generations"] > 20, notes
    assert end["fds"] <= start["fds"] + 2 and end["threads"] <= start["threads"] + 1
    assert notes["peak backends"] <= row["pool_size"]


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_clients_for_60_s_through_300_edits_see_only_good_whole_generations(
    pg_dsn: str, tmp_path: Path
) -> None:
    row = run_stress("load", tmp_path, timeout=300, seconds=60, edits=300, threads=8, dsn=pg_dsn)
    assert row["failures"] == {}, row["table"]
    start, end = row["start"], row["end"]
    assert end["fds"] <= start["fds"] + 2 and end["threads"] <= start["threads"] + 1


# -- in-place saves ---------------------------------------------------------------------


@pytest.mark.postgres
def test_in_place_saves_under_the_watcher_keep_one_pool_and_never_load_a_half_file(
    pg_dsn: str, tmp_path: Path
) -> None:
    row = run_stress("inplace", tmp_path, timeout=120, saves=25, dsn=pg_dsn)
    assert row["failures"] == {}, row["table"]
    assert row["notes"]["peak backends"] <= row["pool_size"]


@pytest.mark.slow
@pytest.mark.postgres
def test_300_in_place_saves_keep_one_pool_and_never_load_a_half_file(
    pg_dsn: str, tmp_path: Path
) -> None:
    row = run_stress("inplace", tmp_path, timeout=600, saves=300, dsn=pg_dsn)
    assert row["failures"] == {}, row["table"]


@pytest.mark.postgres
def test_rapid_in_place_saves_never_make_a_half_written_file_current(
    pg_dsn: str, tmp_path: Path
) -> None:
    """Saves 0-40 ms apart, from an editor process that pauses 5 ms after its truncate
    and after half the file. Before 4e20d9a a batch cut on one save's close was loaded
    while the next save was between its truncate and its write (its events not yet
    read by the watcher): an empty or half module, without hooks, became current within
    8 saves (docs/reliability.md). Stops at the first failure."""
    row = run_stress("inplace", tmp_path, timeout=120, saves=60, dsn=pg_dsn, gap=(0.0, 0.04),
                     until_failure=True)
    assert row["failures"] == {}, row["table"]


# -- slow and odd requests ----------------------------------------------------------------


def _stream_across_reloads(project: Path, make_app: Callable[..., HotReload], seconds: float) -> None:
    package(project, stream_app(project, "v0"))
    app = make_app()
    with serving(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 30)
        conn.request("GET", f"/stream?{seconds}")
        response = conn.getresponse()
        first = response.readline().strip()
        for i in range(1, 6):
            threading.Event().wait(seconds / 7)
            write(project / "rel/app.py", stream_app(project, f"v{i}"))
            assert app.reload() == i + 1
            assert call(port, "GET", "/")[1] == f"v{i}".encode()  # new requests get the new code
        assert app.status()["draining"][0]["generation"] == 1
        chunks = [first, *response.read().split()]
        conn.close()
    assert set(chunks) == {b"v0"} and len(chunks) > 5
    wait_until(lambda: "v0" in purged(project), what="generation 1 purged after the stream")
    assert app.status()["draining"] == []


def test_a_stream_across_5_reloads_finishes_on_its_own_generation(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    _stream_across_reloads(project, make_app, 2.0)


@pytest.mark.slow
def test_a_10_second_stream_across_5_reloads_finishes_on_its_own_generation(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    _stream_across_reloads(project, make_app, 10.0)


def test_a_client_that_disconnects_mid_stream_releases_its_generation(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    package(project, stream_app(project, "v0"))
    app = make_app()
    with serving(app) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /stream?30 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"v0" not in received:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the stream"
            received += chunk
        write(project / "rel/app.py", stream_app(project, "v1"))
        app.reload()
        assert [d["generation"] for d in app.status()["draining"]] == [1]
        # An abortive close (RST): the server's next write fails at once, and it must
        # still call close() on the response.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_until(lambda: app.status()["draining"] == [], what="generation 1 released")
        wait_until(lambda: "v0" in purged(project), what="generation 1 purged")


def test_an_application_that_raises_releases_its_generation(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    package(project, stream_app(project, "v0"))
    app = make_app()
    with serving(app) as port:
        assert call(port, "GET", "/raise")[0] == 500
        assert app.reloader.current.in_flight == 0
        write(project / "rel/app.py", stream_app(project, "v1"))
        app.reload()
        wait_until(lambda: "v0" in purged(project), what="generation 1 purged at once")
        assert app.status()["draining"] == []


def test_a_wsgi_file_wrapper_response_releases_its_generation(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    import waitress.server

    (project / "data.bin").write_bytes(b"x" * 100_000)
    package(project, stream_app(project, "v0"))
    app = make_app()
    port = free_port()
    server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        status, body, _ = call(port, "GET", "/file")
        assert status == 200 and len(body) == 100_000
        wait_until(lambda: app.reloader.current.in_flight == 0, what="the file response closed")
        write(project / "rel/app.py", stream_app(project, "v1"))
        app.reload()
        wait_until(lambda: "v0" in purged(project), what="generation 1 purged")
    finally:
        server.close()
        thread.join(10)


# -- requests that never end ------------------------------------------------------------

SSE_APP = """
import threading
VERSION = {version!r}
STOP = threading.Event()   # a new one per generation

def __mp_purge__():
    with open({marker!r}, "a") as f:
        f.write(VERSION + "\\n")

def app(environ, start_response):
    if environ["PATH_INFO"] == "/events":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        stop = STOP

        def events():
            while not stop.wait(0.05):
                yield f"data: {{VERSION}}\\n\\n".encode()

        return events()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""


def test_a_never_ending_stream_keeps_its_generation_draining_warns_and_is_released_by_drain_timeout(
    project: Path, make_app: Callable[..., HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    marker = str(project / "purged.txt")
    package(project, SSE_APP.format(version="v0", marker=marker))
    app = make_app(debug=True, drain_warning=0.3, drain_timeout=1.5)
    events: list[str] = []
    app.reloader.subscribe(lambda e: events.append(f"{e.kind} {e.generation}"))
    first_stop = app.reloader.current.modules["rel.app"].STOP
    caplog.set_level(logging.WARNING, logger="hotmod")
    with serving(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/events")
        response = conn.getresponse()
        assert next_event(response) == b"data: v0"
        for i in (1, 2, 3):
            write(project / "rel/app.py", SSE_APP.format(version=f"v{i}", marker=marker))
            app.reload()
            assert call(port, "GET", "/")[1] == f"v{i}".encode()  # new generations keep serving
        status = json_status(port)
        assert [d["generation"] for d in status["draining"]] == [1]
        assert status["draining"][0]["in_flight"] == 1
        wait_until(lambda: "drain_warning 1" in events, what="the drain warning")
        assert any("draining for" in r.getMessage() for r in caplog.records)
        assert "v0" not in purged(project)  # still in flight, not past drain_timeout yet
        wait_until(lambda: "drain_timeout 1" in events, timeout=10, what="the drain timeout")
        wait_until(lambda: "v0" in purged(project), what="generation 1 purged by drain_timeout")
        assert json_status(port)["draining"] == []
        assert next_event(response) == b"data: v0"  # the stream itself goes on
        first_stop.set()
        response.read()
        conn.close()
    assert purged(project).count("v0") == 1


def next_event(response: http.client.HTTPResponse) -> bytes:
    for _ in range(10):
        line = response.readline().strip()
        if line:
            return line
    raise AssertionError("no event in 10 lines")


def json_status(port: int) -> dict[str, Any]:
    import json

    status, body, _ = call(port, "GET", STATUS_PATH)
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


# -- hostile code in watched files --------------------------------------------------------

PLAIN_APP = """
VERSION = {version!r}
{extra}
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""


@pytest.mark.parametrize(
    ("extra", "loads"),
    [
        ("import threading, time\n"
         "threading.Thread(target=time.sleep, args=(0.2,), daemon=True).start()\n", True),
        ("import atexit\natexit.register(lambda: None)\n", True),
        ("import sys\nsys.exit(3)\n", False),
        ("raise SystemExit('bye')\n", False),
    ],
    ids=["thread at import", "atexit at import", "sys.exit at import", "SystemExit raised"],
)
def test_hostile_module_code_never_takes_the_server_down(
    project: Path, make_app: Callable[..., HotReload], extra: str, loads: bool
) -> None:
    package(project, PLAIN_APP.format(version="v0", extra=""))
    app = make_app()
    with serving(app) as port:
        write(project / "rel/app.py", PLAIN_APP.format(version="v1", extra=extra))
        if loads:
            assert app.reload() == 2
            assert call(port, "GET", "/")[1] == b"v1"
        else:
            with pytest.raises(ReloadError) as info:
                app.reload()
            assert info.value.failure.type == "SystemExit"
            assert info.value.failure.file == str(project / "rel/app.py")
            assert call(port, "GET", "/")[:2] == (200, b"v0")
        write(project / "rel/app.py", PLAIN_APP.format(version="v2", extra=""))
        app.reload()
        assert call(port, "GET", "/")[:2] == (200, b"v2")


def _slow_import(project: Path, apps: list[HotReload], seconds: float) -> None:
    package(project, PLAIN_APP.format(version="v0", extra=""))
    app = HotReload("rel.app:app", watch=project / "rel")  # the real watcher
    apps.append(app)
    started = project / "import-started"
    with serving(app) as port:
        write(project / "rel/app.py", PLAIN_APP.format(
            version="v1",
            extra=f"open({str(started)!r}, 'w').close()\nimport time\ntime.sleep({seconds})\n",
        ))
        wait_until(started.exists, what="the slow import to begin")
        served = []
        while not started.exists() or app.generation == 1:
            status, body, _ = call(port, "GET", "/")
            served.append((status, body))
            if app.generation != 1 or len(served) > 10_000:
                break
        assert len(served) > 10 and all(s == (200, b"v0") for s in served[:-1])
        wait_until(
            lambda: call(port, "GET", "/")[1] == b"v1", timeout=seconds + 10, what="the slow generation"
        )


def test_a_slow_import_delays_the_new_generation_but_never_the_requests(
    project: Path, apps: list[HotReload]
) -> None:
    _slow_import(project, apps, 2.0)


@pytest.mark.slow
def test_a_5_second_import_delays_the_new_generation_but_never_the_requests(
    project: Path, apps: list[HotReload]
) -> None:
    _slow_import(project, apps, 5.0)


# -- process-level faults -----------------------------------------------------------------


def test_sigterm_during_a_reload_of_hotmod_serve_exits_cleanly_after_purge_hooks(
    project: Path, served: Callable[..., Served]
) -> None:
    marker = project / "purged.txt"
    started = project / "import-started"
    app = PLAIN_APP.format(version="v0", extra=f"""
def __mp_purge__():
    with open({str(marker)!r}, "a") as f:
        f.write(VERSION + "\\n")
""")
    package(project, app)
    port = free_port()
    server = served(["serve", "rel.app:app", "--port", str(port), "--production"], project,
                    command=[str(BIN / "hotmod")])
    server.wait_output(lambda out: "serving" in out, "hotmod serve to start", timeout=20)
    assert call(port, "GET", "/")[1] == b"v0"
    write(project / "rel/app.py", app.replace("'v0'", "'v1'") +
          f"\nopen({str(started)!r}, 'w').close()\nimport time\ntime.sleep(1.5)\n")
    wait_until(started.exists, what="the reload to be under way")
    assert server.stop(signal.SIGTERM, timeout=15) == 0, server.output()
    assert "hotmod: stopped" in server.output()
    # Either the reload finished first (v0 purged as replaced, v1 at close) or close()
    # won (v0 purged at close): each instance purged once, the last one included.
    assert purged(project) in (["v0", "v1"], ["v0"]), (purged(project), server.output())


def test_a_gunicorn_worker_killed_with_sigkill_is_replaced_and_serves_the_latest_code(
    tmp_path: Path, served: Callable[..., Served]
) -> None:
    root = tmp_path / "proj"
    entry = tmp_path / "entry"
    write(root / "gk_app.py", """
        import os
        VERSION = 'v0'
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{VERSION} {os.getpid()}".encode()]
        """)
    write(entry / "gk_entry.py", f"""
        from hotmod.middleware import HotReload
        application = HotReload("gk_app:app", watch={str(root)!r})
        """)
    port = free_port()
    server = served(
        ["-w", "1", "-k", "sync", "--preload", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3",
         "gk_entry:application"],
        entry, command=[str(BIN / "gunicorn")], env={"PYTHONPATH": os.pathsep.join([str(entry), str(root)])},
    )

    def answer() -> tuple[str, int] | None:
        try:
            status, body, _ = call(port, "GET", "/")
        except OSError:  # refused or reset while the worker is replaced
            return None
        words = body.decode(errors="replace").split()
        if status != 200 or len(words) != 2:
            return None
        return words[0], int(words[1])

    _, first_pid = wait_until(answer, timeout=30, what="gunicorn to serve")
    write(root / "gk_app.py", (root / "gk_app.py").read_text().replace("'v0'", "'v1'"))
    wait_until(lambda: (a := answer()) and a[0] == "v1", timeout=20, what="the edit")
    os.kill(first_pid, signal.SIGKILL)
    new = wait_until(lambda: (a := answer()) and a[1] != first_pid and a, timeout=30,
                     what="a new worker")
    # The new worker forked from a master that loaded v0 (--preload): it must
    # notice the edit made before its fork and serve v1.
    assert new[0] == "v1", server.output()
    assert server.stop(signal.SIGTERM, timeout=15) == 0


# -- security -----------------------------------------------------------------------------


def test_production_mode_has_no_status_endpoint_no_header_and_no_error_page(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    package(project, PLAIN_APP.format(version="v0", extra=""))
    app = make_app()
    with serving(app) as port:
        status, body, headers = call(port, "GET", STATUS_PATH)
        assert (status, body) == (200, b"v0")  # the application's own answer
        assert GENERATION_HEADER not in headers
        write(project / "rel/app.py", "raise RuntimeError('<script>alert(1)</script>')\n")
        with pytest.raises(ReloadError):
            app.reload()
        status, body, headers = call(port, "GET", "/")
        assert (status, body) == (200, b"v0") and GENERATION_HEADER not in headers


def test_debug_error_page_renders_script_in_messages_and_source_inert(
    project: Path, make_app: Callable[..., HotReload]
) -> None:
    package(project, PLAIN_APP.format(version="v0", extra=""))
    app = make_app(debug=True)
    with serving(app) as port:
        write(project / "rel/app.py", "X = '<script>alert(\"src\")</script>'\n"
                                      "raise RuntimeError('<script>alert(1)</script>')\n")
        with pytest.raises(ReloadError):
            app.reload()
        status, body, headers = call(port, "GET", "/")
    assert status == 500 and headers[GENERATION_HEADER] == "1"
    # The one script tag is hotmod's live-reload script, by URL (docs/live-reload.md).
    assert body.lower().count(b"<script") == 1
    assert b'<script src="/__hotmod__/live.js"' in body and b"alert" not in body.split(b"<script src=")[1]
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert b"&lt;script&gt;alert(&quot;src&quot;)" in body


def test_hotmod_serve_binds_loopback_by_default(project: Path, served: Callable[..., Served]) -> None:
    package(project, PLAIN_APP.format(version="v0", extra=""))
    port = free_port()
    server = served(["serve", "rel.app:app", "--port", str(port)], project, command=[str(BIN / "hotmod")])
    server.wait_output(lambda out: "serving" in out, "hotmod serve to start", timeout=20)
    assert f"http://127.0.0.1:{port}/" in server.output()
    listening = listening_addresses(server.pid, port)
    assert listening == ["127.0.0.1"], listening


def listening_addresses(pid: int, port: int) -> list[str]:
    """Local addresses that ``pid`` listens on at ``port`` (from /proc/PID/net/tcp*)."""
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                address, _, hexport = local.partition(":")
                if state == "0A" and int(hexport, 16) == port:
                    if table == "tcp":
                        found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                    else:
                        found.append(f"ipv6:{address}")
    return found


def test_nothing_outside_the_roots_is_reloaded_through_symlinks_or_dot_dot_globs(
    tmp_path: Path, clean_modules: None
) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside / "secret_mod.py", "LOADS = 1\n")
    write(outside / "pkg_out/__init__.py", "")
    write(outside / "pkg_out/inner.py", "X = 1\n")
    write(outside / "settings.cfg", "a = 1\n")
    write(root / "sl_app/__init__.py", "")
    (root / "sl_app/linked.py").symlink_to(outside / "secret_mod.py")
    (root / "sl_app/linkdir").symlink_to(outside / "pkg_out", target_is_directory=True)
    write(root / "sl_app/wsgi.py", """
        from sl_app import linked
        from sl_app.linkdir import inner
        app = lambda environ, start_response: [linked.LOADS, inner.X]
        """)
    sys.path.insert(0, str(root))
    for pattern in ("../outside/*.cfg", "../*/*.cfg"):  # refused at start, not silently dropped
        with pytest.raises(ValueError, match=r"has a '\.\.' part"):
            Reloader("sl_app.wsgi:app", roots=[root], extra=[pattern])
    reloader = Reloader("sl_app.wsgi:app", roots=[root], extra=["*.cfg"])
    try:
        reloader.load()
        files = [str(p) for p in reloader.files()]
        assert all(p.startswith(str(root.resolve())) for p in files), files
        write(outside / "secret_mod.py", "LOADS = 2\n")
        write(outside / "pkg_out/inner.py", "X = 2\n")
        write(outside / "settings.cfg", "a = 2\n")
        paths = [root / "sl_app/linked.py", outside / "secret_mod.py", outside / "settings.cfg",
                 root / "sl_app/linkdir/inner.py", root / "../outside/settings.cfg"]
        assert reloader.reload(paths) == 1
        assert reloader.reload() == 1
        assert reloader.current.target({}, None) == [1, 1]
    finally:
        reloader.close()
