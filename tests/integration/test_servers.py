"""HotReload under real WSGI servers, each in a subprocess of its own process group.

Every server serves the same tmp project through an entry module that lives outside
the watched root. The entry adds ``/_probe``, which reports the worker's pid, its
draining generations and what type of object the server got back for a
``wsgi.file_wrapper`` response, so a test can ask each worker whether every
response released its generation.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import Served, call, module_source, wait_until, write

BIN = Path(sys.executable).parent
DATA = b"0123456789abcdef" * 4096  # 64 KiB: large enough that sendfile() is worth it

SERVERS: dict[str, tuple[list[str], int]] = {
    # name: (command after the interpreter's bin folder, worker processes)
    "werkzeug-threaded": (
        [
            sys.executable,
            "-c",
            "import sys; from werkzeug.serving import run_simple; from hm_srv_entry import "
            "application; run_simple('127.0.0.1', int(sys.argv[1]), application, "
            "threaded=True, use_reloader=False)",
            "{port}",
        ],
        1,
    ),
    "gunicorn-sync": ([str(BIN / "gunicorn"), "-w", "2", "-k", "sync"], 2),
    "gunicorn-sync-preload": ([str(BIN / "gunicorn"), "-w", "2", "-k", "sync", "--preload"], 2),
    "gunicorn-gthread": ([str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4"], 2),
    "gunicorn-gthread-preload": (
        [str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4", "--preload"],
        2,
    ),
    "waitress": (
        [str(BIN / "waitress-serve"), "--listen=127.0.0.1:{port}", "hm_srv_entry:application"],
        1,
    ),
}


def app_source(version: str) -> str:
    # It reads data.bin and keeps purged.txt in the folder above its own.
    return module_source("server_app", VERSION=version)


def command(name: str, port: int) -> list[str]:
    template, _ = SERVERS[name]
    args = [part.format(port=port) for part in template]
    if name.startswith("gunicorn"):
        args += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "hm_srv_entry:application"]
    return args


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """The status and body, or ``(0, b"")`` while nothing answers (the server starting)."""
    try:
        status, body, _ = call(port, "GET", path)
    except OSError:
        return 0, b""
    return status, body


def fetch_many(port: int, path: str, count: int = 8) -> list[tuple[int, bytes]]:
    """Concurrent requests, so that every worker process of the server gets some."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: fetch(port, path), range(count)))


@pytest.fixture
def server_project(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    entry = tmp_path / "entry"
    root.mkdir()
    entry.mkdir()
    (tmp_path / "data.bin").write_bytes(DATA)
    write(root / "hm_srv_app.py", app_source("v1"))
    write(entry / "hm_srv_entry.py", module_source("server_entry", ROOT=str(root)))
    return root, entry


@pytest.fixture
def start_server(
    server_project: tuple[Path, Path], served: Callable[..., Served]
) -> Callable[[list[str]], Served]:
    """Start a server command in the entry folder, both folders on its PYTHONPATH."""
    root, entry = server_project

    def start(args: list[str]) -> Served:
        env = {"PYTHONPATH": os.pathsep.join([str(entry), str(root)])}
        server: Served = served(args, entry, command=[], env=env)
        return server

    return start


def probes(port: int, workers: int) -> dict[int, dict[str, Any]]:
    """The latest /_probe answer of each worker, asking until every worker has answered."""
    answers: dict[int, dict[str, Any]] = {}

    def every_worker_answered() -> bool:
        for status, body in fetch_many(port, "/_probe"):
            if status == 200:
                answer = json.loads(body)
                answers[answer["pid"]] = answer
        return len(answers) >= workers

    wait_until(every_worker_answered, timeout=30, what=f"{workers} workers to answer /_probe")
    return answers


@pytest.mark.parametrize("name", list(SERVERS))
def test_every_worker_serves_the_edit_and_releases_every_generation(
    name: str, port: int, server_project: tuple[Path, Path], start_server: Any
) -> None:
    root, entry = server_project
    _, workers = SERVERS[name]
    server = start_server(command(name, port))
    process = server.process
    try:
        wait_until(lambda: fetch(port, "/")[0] == 200, timeout=30, what=f"{name} to serve")
    except AssertionError:
        raise AssertionError(server.output()) from None

    # Both code paths that keep a generation entered after the app returns.
    for status, body in fetch_many(port, "/file"):
        assert (status, body) == (200, DATA)
    for status, body in fetch_many(port, "/stream"):
        assert (status, body) == (200, b"v1:0;v1:1;v1:2;")
    before = probes(port, workers)
    assert {answer["generation"] for answer in before.values()} == {1}
    for answer in before.values():
        if answer.get("file_wrapper"):
            # The server's own file wrapper came back to it: its sendfile path still works.
            assert answer["file_result"] == answer["file_wrapper"]

    write(root / "hm_srv_app.py", app_source("v2"))
    new_pids: set[int] = set()

    def every_worker_serves_v2() -> bool:
        for status, body in fetch_many(port, "/"):
            if status == 200 and body.startswith(b"v2 "):
                new_pids.add(int(body.split()[1]))
        return len(new_pids) >= workers

    wait_until(every_worker_serves_v2, timeout=30, what=f"{workers} workers to serve the edit")
    assert process.poll() is None  # reloaded in place, no restart
    for status, body in fetch_many(port, "/stream"):
        assert (status, body) == (200, b"v2:0;v2:1;v2:2;")

    def nothing_left_draining() -> bool:
        after = probes(port, workers)
        return all(a["generation"] == 2 and a["draining"] == [] for a in after.values())

    wait_until(nothing_left_draining, timeout=30, what="generation 1 to drain in every worker")

    # Process exit runs close() (atexit), which purges the last generation in every worker.
    # gunicorn stops gracefully on SIGTERM; the others exit through KeyboardInterrupt.
    process.send_signal(signal.SIGTERM if name.startswith("gunicorn") else signal.SIGINT)
    process.wait(20)
    purged = (entry.parent / "purged.txt").read_text().split()
    assert {f"v2:{pid}" for pid in new_pids} <= set(purged), purged
