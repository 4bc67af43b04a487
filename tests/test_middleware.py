"""HotReload: generation-pinned dispatch, the debug page, the status endpoint.

Apps are real modules written into the ``project`` tmp root. Tests that count
generations use ``scan_interval=3600`` (no watcher thread, so only ``reload()``
makes a generation); tests about editing-then-serving use the real watcher.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WATCHDOG_LEAKS_ON_STOP
from support import serving, wait_until, write
from werkzeug.test import Client

from hotmod.middleware import GENERATION_HEADER, STATUS_PATH, HotReload
from hotmod.middleware._response import ClosingIterable, SizedClosingIterable, wrap_response
from hotmod.reloader import ReloadError, TargetError

STATUS_KEYS = {
    "live",  # debug mode: what open pages follow (docs/live-reload.md)
    "generation",
    "frozen",
    "pending",
    "draining",
    "history",
    "last_error",
    "leaked",
    "leak_checks_pending",
    "restart_needed",
    "stale",
    "frameworks",
    "graph",
}


def text_app(version: str, *, extra: str = "") -> str:
    return f"""
        VERSION = {version!r}
        {extra}

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([VERSION.encode()])  # not a list: held until close()
        """


def body_of(app: HotReload, path: str = "/") -> tuple[int, str, Any]:
    response = Client(app).get(path, buffered=True)
    return response.status_code, response.get_data(as_text=True), response.headers


# -- the response wrapper -----------------------------------------------------------------


class CountingGeneration:
    def __init__(self) -> None:
        self.exits = 0

    def exit(self) -> None:
        self.exits += 1


class ClosableBody:
    def __init__(self, chunks: list[bytes], log: list[str]) -> None:
        self.chunks = chunks
        self.log = log

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.log.append("app closed")


def test_closing_the_response_closes_the_app_iterable_then_exits_the_generation_once() -> None:
    log: list[str] = []
    generation = CountingGeneration()
    original_exit = generation.exit
    generation.exit = lambda: (log.append("generation exited"), original_exit())  # type: ignore[method-assign]
    wrapped = wrap_response(ClosableBody([b"a", b"b"], log), generation, {})

    assert list(wrapped) == [b"a", b"b"]
    assert generation.exits == 0
    wrapped.close()  # type: ignore[attr-defined]
    wrapped.close()  # type: ignore[attr-defined]
    assert log == ["app closed", "generation exited"]
    assert generation.exits == 1


def test_generation_is_exited_even_when_the_app_iterable_close_raises() -> None:
    class Boom:
        def __iter__(self) -> Iterator[bytes]:
            return iter(())

        def close(self) -> None:
            raise OSError("disk gone")

    generation = CountingGeneration()
    wrapped = wrap_response(Boom(), generation, {})
    with pytest.raises(OSError, match="disk gone"):
        wrapped.close()  # type: ignore[attr-defined]
    assert generation.exits == 1


def test_a_list_body_is_handed_back_as_is_with_its_generation_already_released() -> None:
    generation = CountingGeneration()
    body = [b"one"]
    assert wrap_response(body, generation, {}) is body
    assert generation.exits == 1


def test_a_list_subclass_keeps_its_length_and_a_generator_is_not_buffered() -> None:
    class Body(list[bytes]):
        pass

    generation = CountingGeneration()
    sized = wrap_response(Body([b"one"]), generation, {})
    assert isinstance(sized, SizedClosingIterable)
    assert len(sized) == 1  # type: ignore[arg-type]
    assert generation.exits == 0

    produced: list[int] = []

    def stream() -> Iterator[bytes]:
        for i in range(3):
            produced.append(i)
            yield str(i).encode()

    streamed = wrap_response(stream(), generation, {})
    assert isinstance(streamed, ClosingIterable)
    assert not hasattr(streamed, "__len__")
    iterator = iter(streamed)
    assert next(iterator) == b"0"
    assert produced == [0]


def test_a_server_file_wrapper_comes_back_as_the_same_object_and_releases_on_close(
    tmp_path: Path,
) -> None:
    class ServerFileWrapper:  # shaped like gunicorn's: close copied from the file
        def __init__(self, filelike: Any, blksize: int = 8192) -> None:
            self.filelike = filelike
            self.close = filelike.close

        def __iter__(self) -> Iterator[bytes]:
            return iter(lambda: self.filelike.read(8192), b"")

    path = tmp_path / "f.bin"
    path.write_bytes(b"payload")
    generation = CountingGeneration()
    wrapper = ServerFileWrapper(path.open("rb"))
    result = wrap_response(wrapper, generation, {"wsgi.file_wrapper": ServerFileWrapper})

    assert result is wrapper
    assert isinstance(result, ServerFileWrapper)
    assert list(result) == [b"payload"]
    result.close()  # type: ignore[attr-defined]
    result.close()  # type: ignore[attr-defined]
    assert wrapper.filelike.closed
    assert generation.exits == 1


# -- HotReload with a real engine ---------------------------------------------------------


def test_an_edit_changes_the_response_without_restarting(project: Path, apps: list[HotReload]) -> None:
    write(project / "hm_edit.py", text_app("one", extra="import os; PID = os.getpid()"))
    app = HotReload("hm_edit:app")
    apps.append(app)
    assert body_of(app)[:2] == (200, "one")
    assert app.generation == 1

    write(project / "hm_edit.py", text_app("two", extra="import os; PID = os.getpid()"))
    wait_until(lambda: body_of(app)[1] == "two", what="the watcher to load the edit")
    assert app.generation == 2
    assert sys.modules["hm_edit"].PID == os.getpid()


def test_app_errors_pass_through_unchanged_in_production_and_release_the_generation(
    project: Path, apps: list[HotReload]
) -> None:
    write(
        project / "hm_raise.py",
        """
        class Oops(Exception):
            pass

        ERROR = Oops("from the app")

        def app(environ, start_response):
            raise ERROR
        """,
    )
    app = HotReload("hm_raise:app", scan_interval=3600)
    apps.append(app)
    with pytest.raises(Exception) as caught:
        app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda *a: None)
    assert caught.value is sys.modules["hm_raise"].ERROR
    assert app.reloader.current.in_flight == 0


def test_debug_mode_shows_an_escaped_traceback_page_for_an_app_error_without_locals(
    project: Path, apps: list[HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    write(
        project / "hm_raise_debug.py",
        """
        def app(environ, start_response):
            secret_local = "do-not-show"
            raise KeyError("<script>alert(1)</script>")
        """,
    )
    app = HotReload("hm_raise_debug:app", debug=True, scan_interval=3600)
    apps.append(app)
    with caplog.at_level("ERROR", logger="hotmod"):
        status, page, headers = body_of(app, "/boom")
    assert status == 500
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "KeyError" in page and "GET /boom" in page
    assert "hm_raise_debug.py:4" in page  # file and line of the raise, its source shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "do-not-show" not in page.replace('secret_local = &quot;do-not-show&quot;', "")
    assert app.reloader.current.in_flight == 0
    assert any("GET /boom raised KeyError" in r.getMessage() for r in caplog.records)


def test_a_foreign_host_never_gets_the_traceback_page_the_exception_goes_to_the_server(
    project: Path, apps: list[HotReload]
) -> None:
    write(project / "hm_raise_foreign.py", """
        def app(environ, start_response):
            raise KeyError("secret")
        """)
    app = HotReload("hm_raise_foreign:app", debug=True, scan_interval=3600)
    apps.append(app)
    with pytest.raises(KeyError):
        app({"PATH_INFO": "/", "REQUEST_METHOD": "GET", "HTTP_HOST": "evil.example"}, lambda *a: None)
    assert app.reloader.current.in_flight == 0


def test_an_app_error_after_its_headers_went_out_is_left_to_the_server(
    project: Path, apps: list[HotReload]
) -> None:
    write(
        project / "hm_raise_late.py",
        """
        def app(environ, start_response):
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"partial")
            raise ValueError("after the headers")
        """,
    )
    app = HotReload("hm_raise_late:app", debug=True, scan_interval=3600)
    apps.append(app)
    sent: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        if exc_info is not None and sent:  # PEP 3333: headers already sent: re-raise
            raise exc_info[1].with_traceback(exc_info[2])
        sent.append(status)
        return lambda data: None

    with pytest.raises(ValueError, match="after the headers"):
        app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, start_response)
    assert sent == ["200 OK"]
    assert app.reloader.current.in_flight == 0


def test_a_request_holds_its_generation_until_the_server_closes_the_response(
    project: Path, apps: list[HotReload]
) -> None:
    marker = project / "purged.txt"
    write(
        project / "hm_hold.py",
        text_app(
            "one",
            extra=f"def __mp_purge__():\n            open({str(marker)!r}, 'a').write(VERSION)",
        ),
    )
    app = HotReload("hm_hold:app", scan_interval=3600)
    apps.append(app)
    response = app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda *a: None)
    first = app.reloader.current
    assert first.in_flight == 1

    write(project / "hm_hold.py", text_app("two", extra="def __mp_purge__():\n            pass"))
    assert app.reload() == 2
    assert list(response) == [b"one"]  # still the old generation's body
    assert first.state == "draining"
    assert not marker.exists()

    response.close()  # type: ignore[attr-defined]
    assert first.state == "retired"
    wait_until(marker.exists, what="the old instance's purge hook")
    assert marker.read_text() == "one"


def test_a_streamed_response_begun_before_a_reload_finishes_on_the_old_code(
    project: Path, tmp_path: Path, port: int, apps: list[HotReload]
) -> None:
    # The gate lives outside the watched root, so it is the same object in every generation.
    shared = tmp_path / "shared"
    write(shared / "hm_gate.py", "import threading\nresume = threading.Event()\n")
    sys.path.append(str(shared))
    stream_app = """
        import hm_gate
        VERSION = {version!r}

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            if environ["PATH_INFO"] != "/stream":
                return [VERSION.encode()]

            def body():
                yield f"{{VERSION}}:0\\n".encode()
                hm_gate.resume.wait(10)
                for i in range(1, 4):
                    yield f"{{VERSION}}:{{i}}\\n".encode()

            return body()
        """
    write(project / "hm_stream.py", stream_app.format(version="old"))
    app = HotReload("hm_stream:app", scan_interval=3600)
    apps.append(app)
    with serving(app, port):
        address = f"127.0.0.1:{port}"
        streaming = http.client.HTTPConnection(address, timeout=10)
        streaming.request("GET", "/stream")
        response = streaming.getresponse()
        assert response.readline() == b"old:0\n"

        write(project / "hm_stream.py", stream_app.format(version="new"))
        assert app.reload() == 2
        other = http.client.HTTPConnection(address, timeout=10)
        other.request("GET", "/")
        assert other.getresponse().read() == b"new"
        other.close()

        sys.modules["hm_gate"].resume.set()
        assert response.read() == b"old:1\nold:2\nold:3\n"
        streaming.close()
    wait_until(lambda: not app.reloader.stats()["draining"], what="generation 1 to drain")


def test_four_clients_during_100_reloads_see_only_200s_and_whole_generations(
    project: Path, port: int, apps: list[HotReload]
) -> None:
    # leaf.VALUE is copied into top.COPY when top executes: a generation that mixed a new
    # leaf with an old top (or the reverse) would answer with two different numbers.
    write(project / "hm_leaf.py", "VALUE = 0\n")
    write(
        project / "hm_top.py",
        """
        import hm_leaf
        from hm_leaf import VALUE as COPY

        def app(environ, start_response):
            body = f"{hm_leaf.VALUE}/{COPY}".encode()
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        """,
    )
    app = HotReload("hm_top:app", scan_interval=3600)
    apps.append(app)
    done = threading.Event()
    results: list[list[tuple[int, bytes]]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def client(seen: list[tuple[int, bytes]]) -> None:
        connection = http.client.HTTPConnection(address, timeout=10)
        try:
            while not done.is_set() and len(seen) < 100_000:
                connection.request("GET", "/")
                response = connection.getresponse()
                seen.append((response.status, response.read()))
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
        finally:
            connection.close()

    with serving(app, port):
        address = f"127.0.0.1:{port}"
        threads = [threading.Thread(target=client, args=(seen,)) for seen in results]
        for thread in threads:
            thread.start()
        try:
            for number in range(1, 101):
                write(project / "hm_leaf.py", f"VALUE = {number}\n")
                assert app.reload() == number + 1
        finally:
            done.set()
            for thread in threads:
                thread.join(15)
    assert not errors, errors
    responses = [item for seen in results for item in seen]
    assert responses
    assert {status for status, _ in responses} == {200}
    values = set()
    for _, body in responses:
        left, right = body.decode().split("/")
        assert left == right, f"a response mixed two generations: {body!r}"
        values.add(int(left))
    assert len(values) > 1  # the clients really ran across reloads
    wait_until(lambda: not app.reloader.stats()["draining"], what="every generation to drain")


def test_debug_page_appears_while_the_edit_is_broken_and_goes_after_the_fix(
    project: Path, apps: list[HotReload]
) -> None:
    path = project / "hm_debug.py"
    write(path, text_app("good"))
    app = HotReload("hm_debug:app", debug=True, scan_interval=3600)
    apps.append(app)
    status, _, headers = body_of(app)
    assert status == 200
    assert headers[GENERATION_HEADER] == "1"

    write(path, 'VERSION = "x"\n\ndef app(environ, start_response:\n    return []\n')
    with pytest.raises(ReloadError):
        app.reload()
    status, page, headers = body_of(app)
    assert status == 500
    assert headers["Content-Type"].startswith("text/html")
    assert "SyntaxError" in page
    assert f"{path}:3" in page or (str(path) in page and ">3<" in page)
    assert "def app(environ, start_response:" in page  # the source around the error
    assert "hm_debug" in page

    write(path, text_app("fixed"))
    assert app.reload() == 2
    status, body, headers = body_of(app)
    assert (status, body) == (200, "fixed")
    assert headers[GENERATION_HEADER] == "2"


def test_debug_page_escapes_the_message_and_the_source(project: Path, apps: list[HotReload]) -> None:
    path = project / "hm_escape.py"
    write(path, text_app("good"))
    app = HotReload("hm_escape:app", debug=True, scan_interval=3600)
    apps.append(app)
    write(path, 'raise RuntimeError("<script>alert(1)</script>")  # <b>bold</b>\n')
    with pytest.raises(ReloadError):
        app.reload()
    status, page, _ = body_of(app)
    assert status == 500
    assert "<script>alert" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_production_mode_keeps_serving_through_a_syntax_error(
    project: Path, apps: list[HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    path = project / "hm_prod.py"
    write(path, text_app("good"))
    app = HotReload("hm_prod:app", scan_interval=3600)
    apps.append(app)
    write(path, "def broken(:\n")
    with pytest.raises(ReloadError):
        app.reload()
    status, body, headers = body_of(app)
    assert (status, body) == (200, "good")
    assert GENERATION_HEADER not in headers
    # No status endpoint either: the path goes to the application like any other.
    assert body_of(app, STATUS_PATH)[:2] == (200, "good")


def test_production_mode_logs_a_failed_edit_once(
    project: Path, apps: list[HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    path = project / "hm_once.py"
    write(path, text_app("good"))
    app = HotReload("hm_once:app")
    apps.append(app)
    with caplog.at_level("ERROR", logger="hotmod"):
        write(path, "def broken(:\n")
        wait_until(lambda: app.reloader.last_error is not None, what="the failed reload")
        for _ in range(20):
            assert body_of(app)[:2] == (200, "good")
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "hm_once.py" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]


def test_status_endpoint_reports_generation_draining_history_errors_and_graph(
    project: Path, apps: list[HotReload]
) -> None:
    write(project / "hm_base.py", "VALUE = 1\n")
    write(
        project / "hm_status.py",
        """
        import hm_base

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([str(hm_base.VALUE).encode()])
        """,
    )
    app = HotReload("hm_status:app", debug=True, scan_interval=3600)
    apps.append(app)
    response = Client(app).get(STATUS_PATH, buffered=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    status = json.loads(response.get_data())
    assert set(status) == STATUS_KEYS
    assert status["generation"] == 1
    assert status["frozen"] is False
    assert status["last_error"] is None
    assert status["draining"] == []
    assert "hm_base" in status["graph"]["hm_status"]

    held = app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda *a: None)
    write(project / "hm_base.py", "VALUE = 2\n")
    assert app.reload() == 2
    status = json.loads(Client(app).get(STATUS_PATH, buffered=True).get_data())
    assert status["generation"] == 2
    assert [(d["generation"], d["in_flight"]) for d in status["draining"]] == [(1, 1)]
    assert set(status["draining"][0]) == {"generation", "in_flight", "since"}
    latest = status["history"][-1]
    assert set(latest) == {"time", "generation", "modules", "importers", "duration_ms", "exec_ms"}
    assert 0 <= latest["exec_ms"] <= latest["duration_ms"]
    assert latest["generation"] == 2
    assert set(latest["modules"]) == {"hm_base", "hm_status"}
    assert latest["importers"] == 1
    held.close()  # type: ignore[attr-defined]

    write(project / "hm_base.py", "VALUE = (\n")
    with pytest.raises(ReloadError):
        app.reload()
    error = json.loads(Client(app).get(STATUS_PATH, buffered=True).get_data())["last_error"]
    assert set(error) == {"module", "file", "line", "type", "message", "traceback"}
    assert error["module"] == "hm_base"
    assert error["type"] == "SyntaxError"
    assert error["file"] == str(project / "hm_base.py")
    assert app.status() == json.loads(Client(app).get(STATUS_PATH, buffered=True).get_data())


def test_freeze_keeps_serving_the_current_generation_and_thaw_loads_the_pending_edit(
    project: Path, apps: list[HotReload]
) -> None:
    path = project / "hm_freeze.py"
    write(path, text_app("one"))
    app = HotReload("hm_freeze:app", debug=True)
    apps.append(app)
    app.freeze()
    assert app.frozen
    write(path, text_app("two"))
    wait_until(lambda: app.status()["pending"], what="the edit to be noted as pending")
    assert str(path) in app.status()["pending"][0] or app.status()["pending"] == [str(path)]
    assert body_of(app)[1] == "one"
    assert app.status()["frozen"] is True

    assert app.thaw() == 2
    assert not app.frozen
    assert body_of(app)[1] == "two"
    assert app.status()["pending"] == []


@pytest.mark.parametrize(
    "backend", ["inotify", pytest.param("watchdog", marks=WATCHDOG_LEAKS_ON_STOP), "polling"]
)
def test_a_hundred_hotreloads_built_and_closed_leave_no_descriptor_and_no_thread(
    project: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HotReload with its watcher, chosen through the environment as a user would:
    100 of them built and closed leave the process as it was."""
    monkeypatch.setenv("HOTMOD_WATCHER", backend)
    write(project / "cycled.py", "def app(environ, start_response):\n    return []\n")
    threads_before = set(threading.enumerate())
    fds_before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(100):
        app = HotReload("cycled:app", watch=project)
        assert app._reloader.watcher.backend == backend
        app.close()
    assert set(threading.enumerate()) == threads_before
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_scan_interval_reloads_on_the_request_that_notices_the_change(
    project: Path, apps: list[HotReload]
) -> None:
    extra = "import threading; LOADED_BY = threading.get_ident()"
    path = project / "hm_scan.py"
    write(path, text_app("one", extra=extra))
    app = HotReload("hm_scan:app", scan_interval=0.01)
    apps.append(app)
    write(path, text_app("two", extra=extra))
    wait_until(lambda: body_of(app)[1] == "two", what="a request to notice the edit")
    # The werkzeug test client calls the app on this thread: this request loaded the code.
    assert sys.modules["hm_scan"].LOADED_BY == threading.get_ident()


def test_scan_mode_tries_a_failed_edit_once_and_again_only_after_the_next_change(
    project: Path, apps: list[HotReload], caplog: pytest.LogCaptureFixture
) -> None:
    path = project / "hm_scan_fail.py"
    write(path, text_app("one"))
    app = HotReload("hm_scan_fail:app", scan_interval=0.001)
    apps.append(app)
    with caplog.at_level("ERROR", logger="hotmod"):
        write(path, "def broken(:\n")
        wait_until(
            lambda: body_of(app) and app.reloader.last_error is not None,
            what="a request to try the edit",
        )
        for _ in range(50):
            assert body_of(app)[:2] == (200, "one")
        failures = app.reloader.stats()["failures"]
        assert failures == 1
        write(path, text_app("two"))
        wait_until(lambda: body_of(app)[1] == "two", what="a request to load the fix")
    errors = [r for r in caplog.records if "hm_scan_fail.py" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]


def test_a_flask_application_factory_is_a_target(project: Path, apps: list[HotReload]) -> None:
    pytest.importorskip("flask")
    write(project / "hm_site" / "__init__.py", "")
    write(project / "hm_site" / "views.py", 'GREETING = "hello"\n')
    write(
        project / "hm_site" / "factory.py",
        """
        from flask import Flask
        from . import views

        def create_app():
            app = Flask(__name__)

            @app.get("/")
            def index():
                return views.GREETING

            return app
        """,
    )
    app = HotReload("hm_site.factory:create_app()", scan_interval=3600)
    apps.append(app)
    assert body_of(app)[:2] == (200, "hello")
    write(project / "hm_site" / "views.py", 'GREETING = "bonjour"\n')
    assert app.reload() == 2
    assert body_of(app)[:2] == (200, "bonjour")


def test_bad_targets_and_system_roots_are_refused(project: Path) -> None:
    write(project / "hm_bad.py", "NOT_CALLABLE = 3\n")
    with pytest.raises(TargetError):
        HotReload("hm_missing_module:app")
    with pytest.raises(TargetError):
        HotReload("hm_bad:nothing_here")
    with pytest.raises(TargetError):
        HotReload("hm_bad:NOT_CALLABLE")
    with pytest.raises(ValueError):
        HotReload("hm_bad:NOT_CALLABLE", watch=[sysconfig.get_paths()["stdlib"]])
    with pytest.raises(ValueError):
        HotReload("hm_bad:app", scan_interval=0)


def test_close_runs_the_purge_hooks_once_and_twice_is_harmless(project: Path) -> None:
    marker = project / "closed.txt"
    write(
        project / "hm_close.py",
        text_app("one", extra=f"def __mp_purge__():\n            open({str(marker)!r}, 'a').write('x')"),
    )
    app = HotReload("hm_close:app")
    assert "generation=1" in repr(app)
    app.close()
    app.close()
    assert marker.read_text() == "x"
    assert "closed" in repr(app)


def test_reverting_a_broken_edit_to_the_loaded_code_takes_the_debug_page_away(
    project: Path, apps: list[HotReload]
) -> None:
    path = project / "hm_revert.py"
    write(path, text_app("good"))
    app = HotReload("hm_revert:app", debug=True, scan_interval=3600)
    apps.append(app)
    write(path, "def broken(:\n")
    with pytest.raises(ReloadError):
        app.reload()
    assert body_of(app)[0] == 500
    write(path, text_app("good"))  # the editor's undo: back to what generation 1 loaded
    app.reload()
    assert body_of(app)[:2] == (200, "good")


def test_the_error_page_says_so_when_the_source_cannot_be_read(tmp_path: Path) -> None:
    from hotmod.middleware._errorpage import render_error_page
    from hotmod.reloader import LoadFailure

    failure = LoadFailure(
        module="gone",
        file=str(tmp_path / "gone.py"),
        line=3,
        type="ImportError",
        message="cannot import name 'x' from 'y' <&>",
        traceback="Traceback ...",
    )
    page = render_error_page(failure, generation=7, readable=lambda path: True).decode()
    assert "(source not available)" in page
    assert "Generation 7 is still loaded" in page
    assert "&lt;&amp;&gt;" in page
    assert f"{tmp_path / 'gone.py'}:3" in page


def test_the_status_endpoint_answers_head_and_refuses_other_methods(
    project: Path, apps: list[HotReload]
) -> None:
    write(project / "hm_methods.py", text_app("one"))
    app = HotReload("hm_methods:app", debug=True, scan_interval=3600)
    apps.append(app)
    client = Client(app)
    head = client.head(STATUS_PATH, buffered=True)
    assert head.status_code == 200
    assert head.get_data() == b""
    assert int(head.headers["Content-Length"]) > 0
    post = client.post(STATUS_PATH, buffered=True)
    assert post.status_code == 405
    assert post.headers["Allow"] == "GET, HEAD"
