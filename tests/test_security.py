"""The security review of issue 12: one test (or a few) per finding.

Debug pages for local eyes only (DNS rebinding), no source read from outside the
roots, symlinks judged where they lead now, one release per response, fork, bounded
memory, inert log lines, roots that are too wide, protective headers, and a status
that never waits on a reload. SECURITY.md says what each of these prevents.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import textwrap
import threading
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from support import call, child_report, serving, wait_until, write
from werkzeug.test import Client

from hotmod.middleware import GENERATION_HEADER, STATUS_PATH, HotReload, cli
from hotmod.middleware._guard import HostCheck
from hotmod.middleware._response import ClosingIterable, _CloseThenRelease
from hotmod.reloader import LoadFailure, Reloader, ReloadError, ReloadEvent, _roots

APP = """
    VERSION = {version!r}

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [VERSION.encode()]
    """

BROKEN = """
    VERSION = "broken"
    SECRET_LINE_OF_SOURCE = 1
    def app(environ, start_response:
        return []
    """


def get(port: int, path: str, host: str) -> tuple[int, str, Message]:
    """GET with an explicit Host header, as ``curl -H "Host: ..."`` (or a rebinding page) sends."""
    reply = call(port, "GET", path, headers={"Host": host})
    return reply.status, reply.text, reply.headers


# -- 1. debug pages for local eyes only (DNS rebinding) -----------------------------------


def test_a_foreign_host_gets_neither_the_status_nor_the_error_page_and_loopback_does(
    project: Path, apps: list[HotReload]
) -> None:
    write(project / "hm_sec_host.py", APP.format(version="v1"))
    app = HotReload("hm_sec_host:app", debug=True, scan_interval=3600)
    apps.append(app)
    with serving(app) as port:
        loopback = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST.", "127.0.0.1"]
        foreign = [f"evil.example:{port}", "evil.example", "127.0.0.1.evil.example", "localhost.evil", "x y"]

        for host in foreign:
            status, body, headers = get(port, STATUS_PATH, host)
            assert status == 400, (host, body)
            assert "--allow-host" in body and "allow_hosts" in body
            assert '"graph"' not in body and "hm_sec_host" not in body
            # Any other path is the application's, answered as usual without the header.
            status, body, headers = get(port, "/", host)
            assert (status, body) == (200, "v1")
            assert GENERATION_HEADER not in headers
        for host in loopback:
            status, body, headers = get(port, STATUS_PATH, host)
            assert status == 200, (host, body)
            assert json.loads(body)["graph"] == {"hm_sec_host": []}
            assert get(port, "/", host)[2][GENERATION_HEADER] == "1"

        write(project / "hm_sec_host.py", BROKEN)
        with pytest.raises(ReloadError):
            app.reload()
        for host in foreign:
            status, body, headers = get(port, "/any/path", host)
            assert status == 400, (host, body)
            assert "SECRET_LINE_OF_SOURCE" not in body and "SyntaxError" not in body
            assert GENERATION_HEADER not in headers
        for host in loopback:
            status, body, _ = get(port, "/any/path", host)
            assert status == 500
            assert "SECRET_LINE_OF_SOURCE" in body and "SyntaxError" in body


def test_a_foreign_host_gets_no_restart_page_and_a_loopback_one_does(
    project: Path, apps: list[HotReload]
) -> None:
    config = "__hotmod_restart__ = 'config is read once'\nGREETING = {greeting!r}\n"
    write(project / "hm_sec_restart" / "__init__.py", "")
    write(project / "hm_sec_restart" / "config.py", config.format(greeting="v1"))
    write(project / "hm_sec_restart" / "wsgi.py", """
        from hm_sec_restart import config

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [config.GREETING.encode()]
        """)
    app = HotReload("hm_sec_restart.wsgi:app", debug=True, scan_interval=3600)
    apps.append(app)
    write(project / "hm_sec_restart" / "config.py", config.format(greeting="v2"))
    assert app.reload() == 1 and app.reloader.restart_needed is not None
    client = Client(app)
    refused = client.get("/", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and "config.py" not in refused.text
    page = client.get("/", headers={"Host": "localhost:8000"})
    assert page.status_code == 503 and "config.py" in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_hosts_the_user_allowed_see_the_debug_pages_and_their_neighbours_do_not(
    project: Path, apps: list[HotReload]
) -> None:
    write(project / "hm_sec_allow.py", APP.format(version="v1"))
    app = HotReload(
        "hm_sec_allow:app", debug=True, scan_interval=3600,
        allow_hosts=["shop.test", ".dev.test", "192.168.1.20", "FE80:0::1"],
    )
    apps.append(app)
    client = Client(app)
    for host in ("shop.test:8000", "dev.test", "api.dev.test:80", "192.168.1.20:8000", "[fe80::1]:81"):
        response = client.get(STATUS_PATH, headers={"Host": host})
        assert response.status_code == 200, host
        assert json.loads(response.get_data())["generation"] == 1
    for host in ("evil.shop.test", "shop.test.evil", "xdev.test", "192.168.1.21"):
        assert client.get(STATUS_PATH, headers={"Host": host}).status_code == 400, host

    anyone = HotReload("hm_sec_allow:app", debug=True, scan_interval=3600, allow_hosts=["*"])
    apps.append(anyone)
    assert Client(anyone).get(STATUS_PATH, headers={"Host": "whatever.example"}).status_code == 200

    with pytest.raises(ValueError, match="list of host names"):
        HotReload("hm_sec_allow:app", allow_hosts="shop.test")
    with pytest.raises(ValueError, match="without a port"):
        HotReload("hm_sec_allow:app", allow_hosts=["shop.test:8000"])


def test_a_request_without_a_host_header_is_judged_by_the_address_the_server_bound() -> None:
    check = HostCheck(["shop.test"])
    assert check.allows({"SERVER_NAME": "127.0.0.1"})
    assert not check.allows({"SERVER_NAME": "0.0.0.0"})
    assert check.allows({"HTTP_HOST": "shop.test", "SERVER_NAME": "0.0.0.0"})
    assert check.allows({"HTTP_HOST": "", "SERVER_NAME": "127.0.0.1"})
    assert not check.allows({"HTTP_HOST": "", "SERVER_NAME": "0.0.0.0"})
    assert not check.allows({"HTTP_HOST": "evil.example\r\nX: y"})


def test_the_verdicts_kept_per_host_value_stay_bounded() -> None:
    check = HostCheck()
    for i in range(2000):
        assert not check.allows({"HTTP_HOST": f"h{i}.example"})
    assert len(check.seen) <= 256


# -- 2. the error page reads no file outside the roots ------------------------------------


def test_the_error_page_for_a_syntax_error_outside_the_roots_shows_no_line_of_it(
    tmp_path: Path, project: Path, apps: list[HotReload], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)  # as hotmod serve runs: '<frozen runpy>' is no file in here
    outside = tmp_path / "outside" / "script.py"
    write(outside, "OUTSIDE_SECRET = (\n")
    write(project / "hm_sec_runpy.py", APP.format(version="v1"))
    app = HotReload("hm_sec_runpy:app", debug=True, scan_interval=3600)
    apps.append(app)
    write(
        project / "hm_sec_runpy.py",
        f"import runpy\nrunpy.run_path({str(outside)!r})\n" + textwrap.dedent(APP.format(version="v2")),
    )
    with pytest.raises(ReloadError):
        app.reload()
    failure = app.reloader.last_error
    assert failure is not None and failure.type == "SyntaxError"
    # A syntax error names its own file and line (issue 20: the fix goes there), but
    # the page shows none of that file's lines: only the line inside the roots that
    # ran it, in the traceback.
    assert (failure.file, failure.line) == (str(outside), 1)

    client = Client(app)
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "OUTSIDE_SECRET" not in page
    assert "runpy.run_path" in page  # the line inside the roots is shown
    status = client.get(STATUS_PATH).get_data(as_text=True)
    assert "OUTSIDE_SECRET" not in status
    # Rendered once per failure: the same bytes serve every request while it lasts.
    first = app({"PATH_INFO": "/", "HTTP_HOST": "localhost"}, lambda *a: None)
    again = app({"PATH_INFO": "/", "HTTP_HOST": "localhost"}, lambda *a: None)
    assert first[0] is again[0]  # type: ignore[index]


@pytest.mark.parametrize("link", ["cause", "context", "group"])
def test_a_syntax_error_outside_the_roots_linked_under_another_error_shows_no_line_of_it(
    tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside" / "script.py"
    write(outside, "OUTSIDE_SECRET = (\n")

    def raised() -> BaseException:
        try:
            try:
                compile(outside.read_text(), str(outside), "exec")
            except SyntaxError as error:
                if link == "cause":
                    raise RuntimeError("wrapped") from error
                if link == "context":
                    raise RuntimeError("while compiling")  # noqa: B904 (the implicit link is the case)
                raise ExceptionGroup("grouped", [error]) from None
        except Exception as exc:
            return exc
        raise AssertionError("nothing was raised")

    def nowhere(path: str) -> bool:
        return False

    def everywhere(path: str) -> bool:
        return True

    hidden = LoadFailure.from_exception(raised(), "m", nowhere).traceback
    assert "SyntaxError" in hidden and "OUTSIDE_SECRET" not in hidden
    # The same error with its file inside the roots shows the line: the check can see it.
    assert "OUTSIDE_SECRET" in LoadFailure.from_exception(raised(), "m", everywhere).traceback


# -- 3. a file that becomes a symlink to elsewhere is not loaded --------------------------


def test_a_module_replaced_by_a_symlink_to_an_outside_file_is_not_executed(
    tmp_path: Path, project: Path, apps: list[HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "executed.txt"
    evil = tmp_path / "outside" / "evil.py"
    write(evil, f"open({str(marker)!r}, 'a').write('executed')\nVALUE = 'outside'\n")
    write(project / "hm_sec_linked.py", "VALUE = 'inside'\n")
    write(project / "hm_sec_link.py", "import hm_sec_linked\napp = lambda e, s: [hm_sec_linked.VALUE]\n")
    reloader = Reloader("hm_sec_link:app", roots=[project], leak_check_delay=0)
    scanning = HotReload("hm_sec_link:app", scan_interval=0.01)
    apps.append(scanning)
    try:
        reloader.load()
        linked = project / "hm_sec_linked.py"
        assert reloader.roots.contains(linked)  # judged once while it was a plain file
        linked.unlink()
        linked.symlink_to(evil)

        with caplog.at_level(logging.WARNING, logger="hotmod"):
            # The watcher's way: the changed path, named.
            assert reloader.reload([linked]) == 1
            assert "outside the watched roots" in caplog.text
            caplog.clear()
            assert reloader.reload() == 1
            assert reloader.reload() == 1
            assert reloader.current.target({}, None) == ["inside"]
            # Scan mode: the request that notices the change runs the same check.
            wait_until(
                lambda: scanning({"PATH_INFO": "/"}, None) == ["inside"]
                and "outside the watched roots" in caplog.text,
                what="a scan to see the symlink",
            )
        assert not marker.exists()
        assert scanning.generation == 1

        linked.unlink()
        write(linked, "VALUE = 'inside again'\n")
        assert reloader.reload() == 2
        assert reloader.current.target({}, None) == ["inside again"]
        assert not marker.exists()
    finally:
        reloader.close()


# -- 4. two threads closing one response release one token --------------------------------


class _TakenTogether(list[Any]):
    """The one-item list a response keeps its generation in, where each of two threads
    waits for the other at its first access: after a look (so both have seen the
    generation there), before a take (so both take at the same moment). The worst
    interleaving, every time, as test_generation.py injects its switches."""

    def __init__(self, items: list[Any], barrier: threading.Barrier) -> None:
        super().__init__(items)
        self.barrier = barrier
        self.waited = threading.local()

    def _switch(self) -> None:
        if not getattr(self.waited, "done", False):
            self.waited.done = True
            self.barrier.wait()

    def pop(self, *args: Any) -> Any:  # a take: the switch comes before it
        self._switch()
        return super().pop(*args)

    def __len__(self) -> int:  # a look: the switch comes after it
        length = super().__len__()
        self._switch()
        return length

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        self._switch()
        return item


class _CountingGeneration:
    def __init__(self) -> None:
        self.exits: list[int] = []

    def exit(self) -> None:
        self.exits.append(threading.get_ident())


@pytest.mark.parametrize("kind", ["iterable", "file wrapper close"])
def test_two_threads_closing_one_response_release_its_generation_once(kind: str) -> None:
    for _ in range(20):
        generation = _CountingGeneration()
        closing: Any
        if kind == "iterable":
            closing = ClosingIterable(iter([b"x"]), generation)
            close = closing.close
        else:
            closing = close = _CloseThenRelease(None, generation)
        closing._held = _TakenTogether(closing._held, threading.Barrier(2, timeout=5))
        threads = [threading.Thread(target=close) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(generation.exits) == 1


# -- 5. fork(): a child drops the requests it inherited -----------------------------------


def test_a_forked_child_drains_the_generations_its_parent_had_requests_in(
    tmp_path: Path, project: Path
) -> None:
    marker = tmp_path / "purged.txt"
    source = """
        import os
        VERSION = {version!r}
        app = lambda environ, start_response: VERSION

        def __mp_purge__():
            with open({marker!r}, "a") as f:
                f.write(VERSION + "@" + str(os.getpid()) + " ")
        """
    path = project / "hm_sec_fork.py"
    write(path, source.format(version="v1", marker=str(marker)))
    reloader = Reloader("hm_sec_fork:app", roots=[project], leak_check_delay=0)
    leave = threading.Event()
    threads: list[threading.Thread] = []

    def hold_a_request() -> threading.Event:
        entered = threading.Event()

        def request() -> None:  # a parent's request, on a thread a child will not have
            generation = reloader.acquire()
            entered.set()
            leave.wait(30)
            generation.exit()

        threads.append(threading.Thread(target=request))
        threads[-1].start()
        assert entered.wait(10)
        return entered

    try:
        first = reloader.load()
        hold_a_request()
        write(path, source.format(version="v2", marker=str(marker)))
        assert reloader.reload() == 2
        second = reloader.current
        hold_a_request()
        assert (first.state, first.in_flight, second.in_flight) == ("draining", 1, 1)

        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            report: list[str] = []
            try:
                report.append(f"handled={reloader.check_fork()}")
                # Generation 1 was draining on the parent's request only: drained here.
                reloader.wait_idle(10)
                report.append(f"first={first.state}")
                # Generation 2 was current, with a parent's request in it.
                write(path, source.format(version="v3", marker=str(marker)))
                report.append(f"reloaded={reloader.reload()}")
                reloader.wait_idle(10)
                report.append(f"second={second.state}")
                purged = [w for w in marker.read_text().split() if w.endswith(f"@{os.getpid()}")]
                report.append("purged=" + ",".join(w.partition("@")[0] for w in purged))
            except BaseException as exc:  # handed to the parent, whose assertion shows it
                report.append(f"raised={exc!r}")
            finally:
                os.write(write_end, " ".join(report).encode())
                os._exit(0)
        report = child_report(pid, read_end, write_end)
        assert report == ["handled=True", "first=retired", "reloaded=3", "second=retired", "purged=v1,v2"]
        # In the parent the requests are still running: nothing retired under them.
        assert (first.state, first.in_flight, second.state) == ("draining", 1, "current")
    finally:
        leave.set()
        for thread in threads:
            thread.join(10)
        reloader.close()


# -- 6. bounded memory ---------------------------------------------------------------------


def test_the_leak_list_keeps_the_latest_leaks_and_counts_them_all(
    tmp_path: Path, project: Path
) -> None:
    write(tmp_path / "outside" / "hm_sec_keep.py", "KEPT = []\n")
    sys.path.insert(0, str(tmp_path / "outside"))
    path = project / "hm_sec_leak.py"
    source = """
        import hm_sec_keep
        VERSION = {version}

        def app(environ, start_response):
            return VERSION

        hm_sec_keep.KEPT.append(app)  # a registry outside the roots keeps every instance
        """
    write(path, source.format(version=0))
    reloader = Reloader("hm_sec_leak:app", roots=[project], leak_check_delay=0, history=3)
    try:
        reloader.load()
        for version in range(1, 7):
            write(path, source.format(version=version))
            assert reloader.reload() == version + 1
        wait_until(lambda: reloader.stats()["leaks"] == 6, timeout=20, what="six leaks reported")
        stats = reloader.stats()
        assert len(stats["leaked"]) == 3
        assert {record["module"] for record in stats["leaked"]} == {"hm_sec_leak"}
        json.dumps(stats["leaked"])  # served whole in the status document
    finally:
        reloader.close()


def test_the_files_a_module_read_are_forgotten_when_it_is_loaded_again(
    tmp_path: Path, project: Path
) -> None:
    write(tmp_path / "outside" / "hm_sec_count.py", "N = [0]\n")
    sys.path.insert(0, str(tmp_path / "outside"))
    for i in range(1, 12):
        write(project / "data" / f"f{i}.txt", "x")
    path = project / "hm_sec_reads.py"
    source = """
        import os
        import hm_sec_count
        hm_sec_count.N[0] += 1
        NAME = "f" + str(hm_sec_count.N[0]) + ".txt"
        with open(os.path.join(os.path.dirname(__file__), "data", NAME)) as f:
            TEXT = f.read()
        EDIT = {edit}
        app = lambda environ, start_response: TEXT
        """
    write(path, source.format(edit=0))
    reloader = Reloader("hm_sec_reads:app", roots=[project], leak_check_delay=0)
    try:
        reloader.load()
        for edit in range(1, 10):
            write(path, source.format(edit=edit))
            reloader.reload()
        assert list(reloader._registry.readers) == [os.path.realpath(project / "data" / "f10.txt")]
    finally:
        reloader.close()


def test_the_roots_verdict_cache_stays_bounded(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_roots, "CACHE_LIMIT", 8)
    roots = _roots.Roots([project])
    for i in range(100):
        assert roots.contains(project / f"m{i}.py")
    assert len(roots._cache) <= 8


# -- 7. inert log lines ---------------------------------------------------------------------


def test_an_exception_message_with_a_newline_and_an_escape_prints_as_one_inert_line(
    project: Path,
) -> None:
    path = project / "hm_sec_log.py"
    write(path, APP.format(version="v1"))
    reloader = Reloader("hm_sec_log:app", roots=[project], leak_check_delay=0)
    out = io.StringIO()
    try:
        reloader.load()
        reloader.subscribe(cli._printer(out))
        fake = "boom\\nhotmod: generation 9: reloaded 1 module(s)\\x1b[2K\\x1b[31m"
        write(path, f'raise RuntimeError("{fake}")\n')
        with pytest.raises(ReloadError):
            reloader.reload()
    finally:
        reloader.close()
    printed = out.getvalue()
    assert printed.count("\n") == 1 and printed.endswith("\n")
    assert "\x1b" not in printed
    assert "boom\\nhotmod: generation 9" in printed and "\\x1b[2K\\x1b[31m" in printed
    assert printed.startswith(f"hotmod: reload failed: {path}:1: RuntimeError: ")


def test_warnings_on_stderr_keep_tracebacks_readable_and_no_line_passes_for_hotmods() -> None:
    record = logging.LogRecord(
        "hotmod", logging.WARNING, __file__, 1, "hook raised:\n%s", ("Traceback\nhotmod: fake\x1b[0m",), None
    )
    text = cli._InertFormatter("hotmod: %(levelname)s: %(message)s").format(record)
    lines = text.split("\n")
    assert lines[0] == "hotmod: WARNING: hook raised:"
    assert all(line.startswith("    ") for line in lines[1:])
    assert "\x1b" not in text and "\\x1b[0m" in text


def test_the_event_line_of_a_failure_escapes_every_field() -> None:
    failure = LoadFailure("m", "/p/a\nb.py", 3, "Error\r", "x\u202ey", "")
    line = cli.describe_event(ReloadEvent("failed", 1, failure=failure))
    assert line == "hotmod: reload failed: /p/a\\nb.py:3: Error\\r: x\\u202ey (still serving generation 1)"


# -- 8. roots that are too wide --------------------------------------------------------------


def test_the_file_system_root_and_the_home_folder_are_refused_as_roots(
    tmp_path: Path, clean_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="root of the file system"):
        Reloader("hm_sec_any:app", roots=["/"])
    home = tmp_path / "home"
    write(home / "hm_sec_home.py", APP.format(version="v1"))
    monkeypatch.setenv("HOME", str(home))
    sys.path.insert(0, str(home))
    # `cd ~ && hotmod serve app:app`: the default root would be the whole home folder.
    with pytest.raises(ValueError, match="is your home folder"):
        HotReload("hm_sec_home:app")
    with pytest.raises(ValueError, match="above your home folder"):
        Reloader("hm_sec_home:app", roots=[tmp_path])
    # A folder of its own inside the home folder is fine.
    write(home / "project" / "hm_sec_proj.py", APP.format(version="v1"))
    sys.path.insert(0, str(home / "project"))
    app = HotReload("hm_sec_proj:app", scan_interval=3600)
    app.close()


def test_a_root_with_more_files_than_the_limit_is_reported(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_roots, "LARGE_ROOT", 5)
    for i in range(4):
        write(project / f"m{i}.py", "")
    write(project / ".git" / "objects" / "a", "")  # excluded folders do not count
    with caplog.at_level(logging.WARNING, logger="hotmod"):
        _roots.Roots([project])
        assert "holds more than" not in caplog.text
        for i in range(4, 8):
            write(project / "sub" / f"m{i}.py", "")
        _roots.Roots([project])
    assert f"watch root {os.path.realpath(project)} holds more than 5 files" in caplog.text


# -- 9. protective headers on every debug response --------------------------------------------


def test_every_debug_response_forbids_sniffing_caching_framing_and_scripts(
    project: Path, apps: list[HotReload]
) -> None:
    path = project / "hm_sec_headers.py"
    write(path, APP.format(version="v1"))
    app = HotReload("hm_sec_headers:app", debug=True, scan_interval=3600)
    apps.append(app)
    client = Client(app)
    status = client.get(STATUS_PATH)
    write(path, BROKEN)
    with pytest.raises(ReloadError):
        app.reload()
    page = client.get("/")
    refused = client.get("/", headers={"Host": "evil.example"})
    assert (status.status_code, page.status_code, refused.status_code) == (200, 500, 400)
    for response in (status, page, refused):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "'self'" not in policy
    for response in (status, refused):
        assert "script-src" not in response.headers["Content-Security-Policy"]
    # The error page lets in the live-reload script (so that it follows the fix) by its
    # exact URL, and no other script, worker, connection or stylesheet.
    live = "http://localhost/__hotmod__/"
    directives = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
    assert directives["script-src"] == f"{live}live.js {live}live-worker.js"  # no SharedWorker: a script
    assert directives["worker-src"] == f"{live}live-worker.js"
    assert directives["connect-src"] == f"{live}live/poll"
    assert directives["style-src"].startswith(f"{live}live.css 'sha256-")
    assert page.get_data().count(b"<script") == 1
    assert b'src="/__hotmod__/live.js"' in page.get_data()

    quiet = HotReload("hm_sec_headers:app", debug=True, scan_interval=3600, live_reload=False,
                      on_load_error="serve")
    apps.append(quiet)
    off = Client(quiet).get("/")
    assert off.status_code == 500 and b"<script" not in off.get_data()
    assert "script-src" not in off.headers["Content-Security-Policy"]


# -- 10. the status never waits on a reload ---------------------------------------------------


def test_the_status_answers_while_a_slow_import_is_loading(
    tmp_path: Path, project: Path, apps: list[HotReload]
) -> None:
    write(tmp_path / "outside" / "hm_sec_gate.py", """
        import threading
        LOADING = threading.Event()
        RELEASE = threading.Event()
        """)
    sys.path.insert(0, str(tmp_path / "outside"))
    import hm_sec_gate  # type: ignore[import-not-found]

    path = project / "hm_sec_slow.py"
    write(path, APP.format(version="v1"))
    app = HotReload("hm_sec_slow:app", debug=True, scan_interval=3600)
    apps.append(app)
    write(path, "import hm_sec_gate\nhm_sec_gate.LOADING.set()\nhm_sec_gate.RELEASE.wait(5)\n"
          + textwrap.dedent(APP.format(version="v2")))
    reloading = threading.Thread(target=app.reload)
    reloading.start()
    try:
        assert hm_sec_gate.LOADING.wait(10), "the slow import did not start"
        answers: list[Any] = []

        def ask() -> None:
            answers.append(Client(app).get(STATUS_PATH))
            answers.append(app.reloader.files())  # what a scan_interval request reads
            answers.append(app.reloader.imports())  # what framework detection reads

        asking = threading.Thread(target=ask)
        asking.start()
        asking.join(3)  # well under the import's 5 s
        assert len(answers) == 3, "a status, files() or imports() call waited on the reload"
        assert not hm_sec_gate.RELEASE.is_set() and reloading.is_alive()
        status = json.loads(answers[0].get_data())
        assert status["generation"] == 1 and status["graph"] == {"hm_sec_slow": []}
        assert list(answers[1].values()) == ["hm_sec_slow"]
    finally:
        hm_sec_gate.RELEASE.set()
        reloading.join(10)
    assert app.generation == 2
