"""One ``hotmod serve`` subprocess per framework test module, and what the tests do
to it: HTTP requests, edits, waits on its printed lines, a client hammering it."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import free_port, wait_until


class Served:
    """``hotmod serve TARGET`` run in ``cwd`` with no other flags on a free port."""

    def __init__(self, target: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotmod", "serve", target, "--port", str(self.port)],
            cwd=cwd,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="served-output", daemon=True)
        self._reader.start()
        self.wait_for(r"^hotmod: serving ", timeout=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> str:
        """The first printed line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s; output:\n" + "\n".join(self.lines)
                    )
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def hotmod_lines(self, after: int = 0) -> list[str]:
        with self._cond:
            return [line for line in self.lines[after:] if line.startswith("hotmod:")]

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._reader.join(timeout=5)


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in ``path`` (which must contain it), in one write."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def until_body(served: Served, path: str, expected: str, timeout: float = 15.0) -> str:
    """Wait for ``path`` to answer 200 with ``expected`` in its body."""

    def check() -> str | None:
        status, body = served.get(path)
        return body if status == 200 and expected in body else None

    return wait_until(check, timeout=timeout, interval=0.02, what=f"{expected!r} at {path}")


class Hammer:
    """A client thread that requests ``path`` in a loop on fresh connections and
    counts the requests that failed (refused, reset, or not 200)."""

    def __init__(self, served: Served, path: str) -> None:
        self.served, self.path = served, path
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hammer", daemon=True)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.served.get(self.path)
            except OSError as error:
                self.failures.append(repr(error))
                continue
            if status == 200:
                self.ok += 1
            else:
                self.failures.append(f"{status}: {body[:200]}")
