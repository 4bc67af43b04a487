"""Helpers shared by test modules: files written so the watcher sees them, a
``hotmod`` subprocess with its output collected, and a plain HTTP GET."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from conftest import wait_until


def write(path: Path, text: str) -> None:
    """Write ``text`` and make sure the stat signature changes, even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


class Served:
    """A ``hotmod`` subprocess in its own process group, with its output collected."""

    def __init__(
        self, args: list[str], cwd: Path, *, command: Sequence[str] = (sys.executable, "-m", "hotmod")
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=env,
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

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def out(self) -> str:
        return "".join(self.stdout)

    def err(self) -> str:
        return "".join(self.stderr)

    def wait_output(self, predicate: Callable[[str], bool], what: str) -> None:
        def check() -> bool:
            if self.process.poll() is not None and not predicate(self.out()):
                raise AssertionError(
                    f"hotmod exited ({self.process.returncode}) before {what}:\n{self.out()}\n{self.err()}"
                )
            return predicate(self.out())

        wait_until(check, timeout=20, what=what)

    def stop(self, sig: int, timeout: float = 10) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def get(port: int, path: str = "/") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
