"""Rules 1 and 2 of issue 20 through ``hotmod serve``, in a subprocess of its own.

Down is never the answer: a target whose code fails at start-up, or in the process
a restart made, is served as its error page (a plain 503 in production) on the
socket it has, and loads once an edit fixes it. And an edit that fails only on
state this process keeps, while a fresh process loads it, restarts the server with
its socket kept."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from support import Served, counting_refusals, get, module_source, wait_until, write

APP = """
import os
from hm_nd_helper import VALUE

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{VALUE} pid={os.getpid()}".encode()]
"""


def test_a_target_that_fails_at_start_serves_its_error_page_and_loads_once_fixed(
    tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    write(tmp_path / "hm_nd_app.py", APP)
    helper = tmp_path / "hm_nd_helper.py"
    write(helper, "VALUE = 'one'\nboom()\n")
    server = served(["serve", "hm_nd_app:app", "--port", str(port)], tmp_path, port=port)
    line = server.wait_for(r"^hotmod: serving ")
    assert f"it did not load: {helper}:2: NameError: name 'boom' is not defined" in line
    assert "serving the error page until an edit fixes it" in line
    status, page = get(port)
    assert status == 500
    assert "NameError" in page and "hm_nd_helper.py" in page
    assert server.status()["generation"] == 0

    write(helper, "VALUE = 'fixed'\n")
    body = server.wait_served("/", "fixed")
    assert int(body.rsplit("pid=", 1)[1]) == server.pid  # in-process: no restart
    assert server.status()["generation"] == 1
    assert server.status()["last_error"] is None


def test_in_production_a_target_that_fails_at_start_is_a_plain_503(
    tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    write(tmp_path / "hm_nd_app.py", APP)
    helper = tmp_path / "hm_nd_helper.py"
    write(helper, "VALUE = (\n")
    server = served(["serve", "hm_nd_app:app", "--port", str(port), "--production"], tmp_path, port=port)
    line = server.wait_for(r"^hotmod: serving ")
    assert f"{helper}:1: SyntaxError" in line
    assert "serving a plain 503" in line
    assert get(port) == (503, "Service Unavailable\n")
    write(helper, "VALUE = 'fixed'\n")
    server.wait_served("/", "fixed")


def test_a_restart_whose_process_cannot_load_keeps_the_socket_and_loads_once_fixed(
    tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    """A restart-only module edited into a syntax error: the restart happens, the new
    process image cannot load, and it answers on the kept socket (the error page names
    the module's own file and line), and the fix serves without another restart."""
    write(tmp_path / "hm_nd_app.py", APP)
    helper = tmp_path / "hm_nd_helper.py"
    write(helper, "__hotmod_restart__ = True\nVALUE = 'one'\n")
    server = served(["serve", "hm_nd_app:app", "--port", str(port)], tmp_path, port=port)
    server.wait_for(r"^hotmod: serving ")
    server.wait_served("/", "one")
    mark = server.mark()
    with counting_refusals(port) as refused:
        write(helper, "__hotmod_restart__ = True\nVALUE = 'two'\n\ndef broken(:\n")
        line = server.wait_for(r"^hotmod: serving ", after=mark, timeout=60)
        assert f"it did not load: {helper}:4: SyntaxError" in line
        status, page = get(port)
        assert status == 500 and "SyntaxError" in page
        write(helper, "__hotmod_restart__ = True\nVALUE = 'three'\n")
        body = server.wait_served("/", "three")
    assert refused == []
    assert int(body.rsplit("pid=", 1)[1]) == server.pid  # exec keeps the process id
    assert len([x for x in server.lines[mark:] if x.startswith("hotmod: restarting")]) == 1


REGISTRY = module_source("registry")

REGISTERING_APP = """
import os
import hm_nd_registry

hm_nd_registry.register("user")
VALUE = {value!r}

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{{VALUE}} pid={{os.getpid()}}".encode()]
"""


def test_an_edit_that_only_a_fresh_process_loads_restarts_with_the_socket_kept(
    tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    lib = tmp_path / "lib"  # a library: outside the watched root, shared by generations
    write(lib / "hm_nd_registry.py", REGISTRY)
    project = tmp_path / "project"
    app = project / "hm_nd_app.py"
    write(app, REGISTERING_APP.format(value="one"))
    server = served(
        ["serve", "hm_nd_app:app", "--port", str(port)], project, port=port, env={"PYTHONPATH": str(lib)}
    )
    server.wait_for(r"^hotmod: serving ")
    server.wait_served("/", "one")
    mark = server.mark()
    with counting_refusals(port) as refused:
        write(app, REGISTERING_APP.format(value="two"))
        server.wait_for(r"reload failed: .*ValueError: 'user' is already registered", after=mark)
        restarting = server.wait_for(r"^hotmod: restarting: ", after=mark, timeout=60)
        server.wait_served("/", "two")
    assert "already registered" in restarting and "loads in a fresh one" in restarting
    assert refused == []
    # A broken edit after it stays an error page: a fresh process fails the same way.
    mark = server.mark()
    broken = REGISTERING_APP.format(value="three").replace("hm_nd_registry.register", "undefined_name\n&")
    write(app, broken.replace("&", "hm_nd_registry.register"))
    server.wait_for(r"reload failed: .*hm_nd_app.py:5: NameError", after=mark)
    # The probe (not awaited by anything the server prints at INFO) fails the same way.
    status, page = get(port)
    assert status == 500 and "NameError" in page
    # An edit broken *and* registering again: this process stops at the registry, a
    # fresh one at the broken line, and that is the error the page ends up showing.
    mark = server.mark()
    write(app, REGISTERING_APP.format(value="four") + "\nundefined_name\n")
    server.wait_for(r"reload failed: .*ValueError: 'user' is already registered", after=mark)
    server.wait_for(r"a fresh process fails to load hm_nd_app:app differently: .*hm_nd_app.py:12: NameError",
                    after=mark, timeout=60)
    def fresh_error_page() -> str | None:
        body = get(port)[1]
        return body if "NameError" in body and "already registered" not in body else None

    page = wait_until(fresh_error_page, what="the error page to show the fresh process's error")
    assert "Traceback (in a fresh process)" in page
    assert not [x for x in server.lines[mark:] if x.startswith("hotmod: restarting")]


def test_a_typo_in_the_target_at_first_start_is_still_one_line_of_error(tmp_path: Path, port: int) -> None:
    """What the command line names wrongly is not an edit to wait for."""
    import subprocess
    import sys

    write(tmp_path / "hm_nd_ok.py", "def app(environ, start_response):\n    return []\n")
    result = subprocess.run(
        [sys.executable, "-m", "hotmod", "serve", "hm_nd_ok:ap", "--port", str(port)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, start_new_session=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hotmod: error: module 'hm_nd_ok' ({tmp_path / 'hm_nd_ok.py'}) has no attribute 'ap'"
    ]
    with socket.socket() as probe:  # and nothing listens
        assert probe.connect_ex(("127.0.0.1", port)) != 0


FLAKY = """
import os

def check(flag):
    # Fails in every server process while the flag exists, never in a probe: the worst
    # case for a restart loop (the fresh process that was asked loads, the restarted
    # one does not).
    if os.path.exists(flag) and not os.environ.get("HOTMOD_PROBE_CHILD"):
        raise RuntimeError("fails in a server, loads in a probe")
"""

FLAKY_APP = """
import os
import hm_nd_flaky

hm_nd_flaky.check({flag!r})
VALUE = {value!r}

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{{VALUE}} pid={{os.getpid()}}".encode()]
"""


def test_a_restart_that_still_cannot_load_waits_for_an_edit_and_never_loops(
    tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    lib = tmp_path / "lib"
    write(lib / "hm_nd_flaky.py", FLAKY)
    flag = tmp_path / "flag"
    project = tmp_path / "project"
    app = project / "hm_nd_app.py"
    write(app, FLAKY_APP.format(flag=str(flag), value="one"))
    server = served(
        ["serve", "hm_nd_app:app", "--port", str(port)], project, port=port, env={"PYTHONPATH": str(lib)}
    )
    server.wait_for(r"^hotmod: serving ")
    server.wait_served("/", "one")
    mark = server.mark()
    flag.write_text("")
    write(app, FLAKY_APP.format(flag=str(flag), value="two"))
    server.wait_for(r"^hotmod: restarting: .*loads in a fresh one", after=mark, timeout=60)
    line = server.wait_for(r"^hotmod: serving ", after=mark, timeout=60)
    assert "it did not load" in line and "fails in a server, loads in a probe" in line
    # The restarted process's own load was a fresh process's answer: never probed,
    # never restarted again without an edit (the absence is watched for 3 s).
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert get(port)[0] == 500
        time.sleep(0.1)
    assert len([x for x in server.lines[mark:] if x.startswith("hotmod: restarting")]) == 1
    flag.unlink()
    write(app, FLAKY_APP.format(flag=str(flag), value="three"))
    server.wait_served("/", "three")
