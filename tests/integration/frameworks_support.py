"""What the framework integration tests share: a private copy of an app from
``tests/fixtures/frameworks/``, ``hotmod serve`` on it in a subprocess of its own
process group (no flags but the port), a small HTTP client, and edits that always
change a file's stat signature."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import free_port, wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "frameworks"

#: How long after start-up the tests watch for a reload that no edit caused.
QUIET_START = 1.5
#: Bound of every wait for an edit to be served.
EDIT_TIMEOUT = 15.0


def copy_fixture(name: str, parent: Path) -> Path:
    """A copy of ``tests/fixtures/frameworks/<name>`` (the fixture is never edited)."""
    dest = parent / name
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def write(path: Path, text: str) -> None:
    """Write ``text`` and make sure the stat signature changes, even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


def replace(path: Path, old: str, new: str) -> None:
    """Edit ``path``: ``old`` (which must occur) becomes ``new``."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    write(path, text.replace(old, new))


def get(port: int, path: str = "/") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Served:
    """``hotmod serve TARGET --port PORT`` in ``cwd``, in its own process group, with
    its stdout and stderr collected line by line."""

    def __init__(self, target: str, cwd: Path, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotmod", "serve", target, "--port", str(self.port)],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.wait_output(lambda out: f"http://127.0.0.1:{self.port}/" in out, "the serving line")
        self.pid = self.process.pid

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def out(self) -> str:
        return "".join(self.stdout)

    def err(self) -> str:
        return "".join(self.stderr)

    def wait_output(self, predicate: Callable[[str], bool], what: str, timeout: float = 30.0) -> None:
        def check() -> bool:
            if self.process.poll() is not None and not predicate(self.out()):
                raise AssertionError(
                    f"hotmod exited ({self.process.returncode}) before {what}:\n{self.out()}\n{self.err()}"
                )
            return predicate(self.out())

        wait_until(check, timeout=timeout, what=what)

    def get(self, path: str = "/") -> tuple[int, str]:
        return get(self.port, path)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/__hotmod__")
        assert code == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def wait_served(self, path: str, needle: str, *, status: int = 200) -> str:
        """Poll ``path`` until it answers ``status`` with ``needle`` in the body."""

        def served() -> str | None:
            code, body = self.get(path)
            return body if code == status and needle in body else None

        return wait_until(
            served, timeout=EDIT_TIMEOUT, interval=0.02,
            what=f"{path} to answer {status} with {needle!r}\n{self.out()}\n{self.err()}",
        )

    def settle(self) -> dict[str, Any]:
        """Wait until no generation drains any more, then past the engine's leak check
        (it runs a second after a retirement; only its absence can be waited for)."""
        wait_until(lambda: not self.status()["draining"], timeout=EDIT_TIMEOUT, what="drained generations")
        time.sleep(1.5)
        return self.status()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(10)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        for reader in self._readers:
            reader.join(5)
        return code


@contextmanager
def serving(target: str, cwd: Path, *, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Serve ``target`` and stop the server (its whole process group) afterwards."""
    server = Served(target, cwd, env=env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
        # Anything the server started (nothing should be left) goes with its group.
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def quiet_start(server: Served) -> tuple[int, str]:
    """The generation and the output after ``QUIET_START`` seconds with no edit (a
    reload now would be one that nothing caused)."""
    time.sleep(QUIET_START)  # the absence of a reload can only be watched for a while
    return server.status()["generation"], server.out()


def twenty_edits(server: Served, path: Path, url: str, text: Callable[[int], tuple[str, str]]) -> None:
    """Edit ``path`` 20 times, each edit served at ``url`` before the next, then back:
    ``text(n)`` is (the source, the text served) of the n-th version, ``text(0)`` the
    original. Then no generation may leak, and the server's descriptors must come back
    to their number after the first edit (connections still closing may take a moment)."""
    first = 0
    for n in [*range(1, 21), 0]:
        source, served = text(n)
        replace(path, text(n - 1 if n else 20)[0], source)
        server.wait_served(url, served)
        if n == 1:
            first = fd_count(server.pid)
    status = server.settle()
    assert status["leaked"] == []
    assert "leak" not in server.err()
    wait_until(lambda: fd_count(server.pid) <= first, timeout=5.0, what=f"descriptors back to {first}")
    assert server.process.poll() is None and server.process.pid == server.pid
