"""``hotmod serve`` end to end, in a subprocess of its own process group."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from support import Served, free_port, get, wait_until, write

BIN = Path(sys.executable).parent


def app_source(version: str, marker: Path) -> str:
    return f"""
        import os
        VERSION = {version!r}

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{{VERSION}} {{os.getpid()}}".encode()]

        def __mp_purge__():
            with open({str(marker)!r}, "a") as f:
                f.write(VERSION + ",")
        """


def test_serve_reloads_edits_in_place_prints_each_reload_and_failure_and_stops_cleanly(
    tmp_path: Path, port: int, served: Callable[[list[str], Path], Served]
) -> None:
    marker = tmp_path / "purged.txt"
    path = tmp_path / "hm_cli_app.py"
    write(path, app_source("v1", marker))
    server = served(["serve", "hm_cli_app:app", "--port", str(port)], tmp_path)
    server.wait_output(lambda out: f"http://127.0.0.1:{port}/" in out, "the serving line")

    status, body = get(port)
    version, pid = body.split()
    assert (status, version) == (200, "v1")
    assert int(pid) == server.process.pid

    write(path, app_source("v2", marker))
    wait_until(lambda: get(port)[1] == f"v2 {pid}", what="the edit to be served by the same process")
    server.wait_output(lambda out: "generation 2" in out, "the reload line")

    write(path, "import os\n\ndef app(environ, start_response:\n    pass\n")
    server.wait_output(lambda out: "reload failed" in out, "the failure line")
    assert "hm_cli_app.py:3" in server.out()
    status, page = get(port)
    assert status == 500
    assert "SyntaxError" in page

    write(path, app_source("v3", marker))
    wait_until(lambda: get(port) == (200, f"v3 {pid}"), what="the fix to be served")

    assert server.stop(signal.SIGTERM) == 0
    assert marker.read_text().endswith("v3,")  # close() purged the last generation
    assert "Traceback" not in server.err()
    assert len([line for line in server.stdout if "reload failed" in line]) == 1


def test_ctrl_c_stops_the_server_with_status_0_after_running_purge_hooks(
    tmp_path: Path, port: int, served: Callable[[list[str], Path], Served]
) -> None:
    marker = tmp_path / "purged.txt"
    write(tmp_path / "hm_cli_int.py", app_source("only", marker))
    server = served(["serve", "hm_cli_int:app", "--port", str(port), "--production"], tmp_path)
    server.wait_output(lambda out: "serving" in out, "the serving line")
    assert get(port)[0] == 200
    assert get(port, "/__hotmod__")[1].startswith("only")  # production: no status endpoint
    assert server.stop(signal.SIGINT) == 0
    assert marker.read_text() == "only,"
    assert "Traceback" not in server.err()


def test_sigterm_during_a_long_stream_still_exits_0_within_the_bound_after_purging(
    tmp_path: Path, port: int, served: Callable[[list[str], Path], Served]
) -> None:
    marker = tmp_path / "purged.txt"
    write(
        tmp_path / "hm_cli_stream.py",
        f"""
        import time

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            def body():
                for i in range(600):  # a minute of chunks: longer than any shutdown bound
                    yield b"chunk\\n"
                    time.sleep(0.1)
            return body()

        def __mp_purge__():
            with open({str(marker)!r}, "a") as f:
                f.write("purged")
        """,
    )
    server = served(["serve", "hm_cli_stream:app", "--port", str(port)], tmp_path)
    server.wait_output(lambda out: "serving" in out, "the serving line")
    response = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    try:
        assert response.readline() == b"chunk\n"
        assert server.stop(signal.SIGTERM, timeout=8) == 0
    finally:
        response.close()
    assert marker.read_text() == "purged"
    assert "Traceback" not in server.err()


def test_poll_extra_and_exclude_options_reach_the_engine(
    tmp_path: Path, port: int, served: Callable[[list[str], Path], Served]
) -> None:
    write(tmp_path / "greeting.txt", "hello")
    write(tmp_path / "hm_cli_settings.py", "NAME = 'one'\n")
    source = """
        import pathlib
        from hm_cli_settings import NAME

        GREETING = (pathlib.Path(__file__).parent / "greeting.txt").read_text()
        EDIT = {edit!r}

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{{GREETING}} {{NAME}} {{EDIT}}".encode()]
        """
    write(tmp_path / "hm_cli_opts.py", source.format(edit=1))
    args = ["serve", "hm_cli_opts:app", "--port", str(port), "--poll", "--production"]
    args += ["--extra", "*.txt", "--exclude", "hm_cli_settings.py"]
    server = served(args, tmp_path)
    server.wait_output(lambda out: "(polling)" in out, "the watching line naming the poller")
    assert get(port) == (200, "hello one 1")

    write(tmp_path / "greeting.txt", "bonjour")  # an --extra file read at import
    wait_until(lambda: get(port) == (200, "bonjour one 1"), what="the template edit")

    # The excluded module keeps its instance even when its importer is re-executed.
    write(tmp_path / "hm_cli_settings.py", "NAME = 'two'\n")
    write(tmp_path / "hm_cli_opts.py", source.format(edit=2))
    wait_until(lambda: get(port)[1].endswith(" 2"), what="the module edit")
    assert get(port) == (200, "bonjour one 2")
    assert server.stop(signal.SIGTERM) == 0


def test_binding_every_interface_in_debug_mode_names_the_hosts_that_see_the_debug_pages(
    tmp_path: Path, port: int, served: Callable[[list[str], Path], Served]
) -> None:
    write(tmp_path / "hm_cli_any.py", app_source("any", tmp_path / "m.txt"))
    args = ["serve", "hm_cli_any:app", "--host", "0.0.0.0", "--port", str(port), "--allow-host", "shop.test"]
    server = served(args, tmp_path)
    server.wait_output(lambda out: "serving" in out, "the serving line")
    wait_until(lambda: "source code" in server.err(), what="the warning")
    assert "answer requests for localhost, 127.0.0.1, [::1], shop.test;" in server.err()
    for host, expected in (("shop.test:80", 200), ("other.test", 400), (f"127.0.0.1:{port}", 200)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/__hotmod__", headers={"Host": host})
        assert connection.getresponse().status == expected, host
        connection.close()
    assert server.stop(signal.SIGTERM) == 0


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotmod", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing module", "hm_nowhere"),
        ("missing attribute", "nothing_here"),
        ("attribute not callable", "NOT_CALLABLE"),
        ("missing watch folder", "no_such_folder"),
        ("the file system as a root", "'/' is the root of the file system"),
        ("port in use", "in use"),
        ("a non-factory called as one", "is not an app factory"),
        ("a host that does not resolve", "cannot resolve host 'no-such-host.invalid'"),
        ("an extra glob that never matches", "'templates/*.html' can never match"),
        ("an extra glob with '..'", "'../*.html' has a '..' part"),
    ],
)
def test_bad_input_is_one_line_of_error_and_a_non_zero_exit(
    tmp_path: Path, port: int, case: str, expected: str
) -> None:
    write(
        tmp_path / "hm_cli_ok.py",
        "NOT_CALLABLE = 1\n\ndef app(environ, start_response):\n    return []\n",
    )
    args = {
        "missing module": ["hm_nowhere:app"],
        "missing attribute": ["hm_cli_ok:nothing_here"],
        "attribute not callable": ["hm_cli_ok:NOT_CALLABLE"],
        "missing watch folder": ["hm_cli_ok:app", "--watch", "no_such_folder"],
        "the file system as a root": ["hm_cli_ok:app", "--watch", "/"],
        "port in use": ["hm_cli_ok:app"],
        "a non-factory called as one": ["hm_cli_ok:app()"],
        "a host that does not resolve": ["hm_cli_ok:app", "--host", "no-such-host.invalid"],
        "an extra glob that never matches": ["hm_cli_ok:app", "--extra", "templates/*.html"],
        "an extra glob with '..'": ["hm_cli_ok:app", "--extra", "../*.html"],
    }[case]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        result = run_cli(["serve", *args, "--port", str(port)], tmp_path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hotmod: error:")
    assert expected in lines[0]
    assert "None" not in lines[0]


def test_a_watcher_backend_named_in_the_environment_that_does_not_exist_is_one_line(
    tmp_path: Path, port: int
) -> None:
    write(tmp_path / "hm_cli_ok.py", "def app(environ, start_response):\n    return []\n")
    result = subprocess.run(
        [sys.executable, "-m", "hotmod", "serve", "hm_cli_ok:app", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "HOTMOD_WATCHER": "fsevents"},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        "hotmod: error: HOTMOD_WATCHER='fsevents' in the environment is not a watcher backend"
        " (one of inotify, watchdog, polling)"
    ]


def test_a_missing_module_says_how_to_make_it_importable(tmp_path: Path) -> None:
    result = run_cli(["serve", "hm_nowhere:app"], tmp_path)
    assert result.returncode == 1
    assert "PYTHONPATH" in result.stderr
    assert "pass its folder to watch" not in result.stderr  # --watch does not touch sys.path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "99999"], "argument --port: 99999 is not a port number (1-65535, or 0"),
        (["--port", "-1"], "argument --port: -1 is not a port number"),
        (["--port", "http"], "argument --port: 'http' is not a port number"),
        (["--drain-timeout", "0"], "argument --drain-timeout: '0' must be a positive number"),
        (["--quiet", "--verbose"], "not allowed with argument"),
    ],
)
def test_bad_option_values_are_one_line_naming_the_value_and_what_is_accepted(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run_cli(["serve", "hm_cli_ok:app", *args], tmp_path)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hotmod: error: ")
    assert expected in lines[0]
    assert result.stdout == ""


def test_version_comes_from_the_package_through_the_script_and_python_m_hotmod(tmp_path: Path) -> None:
    import hotmod

    by_script = subprocess.run(
        [str(BIN / "hotmod"), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    by_module = run_cli(["--version"], tmp_path)
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout.strip() == by_module.stdout.strip() == f"hotmod {hotmod.__version__}"


def test_quiet_prints_failures_but_not_reloads_and_verbose_adds_the_engine_log(
    tmp_path: Path, served: Callable[..., Served]
) -> None:
    marker = tmp_path / "m.txt"
    write(tmp_path / "hm_cli_quiet.py", app_source("q1", marker))
    write(tmp_path / "hm_cli_loud.py", app_source("l1", marker))
    quiet_port, loud_port = free_port(), free_port()
    quiet = served(["serve", "hm_cli_quiet:app", "--port", str(quiet_port), "--quiet"], tmp_path)
    loud = served(["serve", "hm_cli_loud:app", "--port", str(loud_port), "--verbose"], tmp_path)
    for server in (quiet, loud):
        server.wait_output(lambda out: "serving" in out, "the serving line")
    assert "watching" not in quiet.out()
    assert "generation 1: loaded hm_cli_loud:app" in loud.err()  # the engine's INFO line

    write(tmp_path / "hm_cli_quiet.py", app_source("q2", marker))
    write(tmp_path / "hm_cli_loud.py", app_source("l2", marker))
    wait_until(lambda: get(quiet_port)[1].startswith("q2"), what="the quiet server's reload")
    loud.wait_output(lambda out: "generation 2: reloaded" in out, "the loud server's reload line")
    write(tmp_path / "hm_cli_quiet.py", "def app(:\n")
    quiet.wait_output(lambda out: "reload failed" in out, "the quiet server's failure line")
    assert "reloaded" not in quiet.out()
    assert quiet.stop(signal.SIGTERM) == 0
    assert quiet.out().splitlines()[-1].startswith("hotmod: reload failed")  # no "stopped" line


def test_the_console_script_is_installed_and_explains_itself(tmp_path: Path) -> None:
    script = BIN / "hotmod"
    # `make test` installs the project with pip -e, which creates the script.
    assert script.exists(), f"no console script at {script}: run `make install`"
    result = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0
    options = ("--watch", "--host", "--port", "--poll", "--production", "--exclude", "--extra")
    for option in (*options, "--allow-host"):
        assert option in result.stdout


def test_drain_options_reach_the_engine_and_bad_values_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hotmod.middleware import cli

    write(tmp_path / "hm_cli_drain.py", "def app(environ, start_response):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = cli.build_parser().parse_args(
        ["serve", "hm_cli_drain:app", "--drain-warning", "5", "--drain-timeout", "2.5"]
    )
    hot = cli._load(args)
    try:
        assert (hot.reloader.drain_warning, hot.reloader.drain_timeout) == (5.0, 2.5)
    finally:
        hot.close()
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["serve", "hm_cli_drain:app", "--drain-timeout", "0"])
    assert exited.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("form", ["templates/*.html", "**/*.html", "absolute inside the root"])
def test_each_extra_glob_form_reloads_on_a_template_edit(
    tmp_path: Path, port: int, served: Callable[..., Served], form: str
) -> None:
    (tmp_path / "templates").mkdir()
    write(tmp_path / "templates" / "page.html", "<p>one</p>")
    write(
        tmp_path / "hm_cli_tpl.py",
        """
        import os
        CACHE = {}  # filled at the first request, as template engines do: no reader at import

        def app(environ, start_response):
            if "page" not in CACHE:
                with open(os.path.join(os.path.dirname(__file__), "templates", "page.html")) as f:
                    CACHE["page"] = f.read()
            start_response("200 OK", [("Content-Type", "text/html")])
            return [CACHE["page"].encode()]
        """,
    )
    pattern = f"{tmp_path}/templates/*.html" if form.startswith("absolute") else form
    server = served(["serve", "hm_cli_tpl:app", "--port", str(port), "--extra", pattern], tmp_path)
    server.wait_output(lambda out: "serving" in out, "the serving line")
    assert get(port) == (200, "<p>one</p>")
    write(tmp_path / "templates" / "page.html", "<p>two</p>")
    wait_until(lambda: get(port)[1] == "<p>two</p>", what=f"the template edit under --extra {form}")
    assert "hm_cli_tpl" in server.out().splitlines()[-1]  # the reload line names the reader
    assert server.stop(signal.SIGTERM) == 0
