"""Fixtures shared by every test module.

Waits are bounded polls (`wait_until`), servers bind 127.0.0.1 on free ports,
and the PostgreSQL fixture skips with a reason on a machine without a server,
but fails under ``CI=true`` so that CI can never pass without the database.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import free_port

# A suite started in the background by a shell (`make test &`) inherits SIGINT
# ignored, and so would every server it starts: the tests that stop a server with
# Ctrl-C's signal (waitress, werkzeug) would wait for an exit that never comes. A
# handler here is reset to the default in each child at exec, where "ignored" is not.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

if TYPE_CHECKING:
    from support import Served

    from hotmod.middleware import HotReload
    from hotmod.reloader import Reloader

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The DSN of a reachable PostgreSQL server (``HOTMOD_TEST_DSN``)."""
    dsn = os.environ.get("HOTMOD_TEST_DSN", DEFAULT_DSN)
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # any failure to reach the server means the same thing here
        reason = f"PostgreSQL not reachable at {dsn} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}; CI=true requires the database tests to run", pytrace=False)
        pytest.skip(reason)
    return dsn


@pytest.fixture
def clean_modules() -> Iterator[None]:
    """Remove from ``sys.modules`` every module a test imported from its tmp_path."""
    before = set(sys.modules)
    saved_path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path[:] = saved_path


@pytest.fixture
def project(tmp_path: Path, clean_modules: None) -> Path:
    """A temporary watched root, first on ``sys.path``, with a unique package name space."""
    root = tmp_path / "proj"
    root.mkdir()
    sys.path.insert(0, str(root))
    return root


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    """Starts servers in subprocesses (``served(args, cwd, command=..., env=..., port=...)``,
    as ``support.Served``: ``hotmod`` unless ``command`` names another); kills the process
    group of each when the test ends."""
    from support import Served

    started: list[Served] = []

    def start(args: list[str], cwd: Path, **options: Any) -> Served:
        server = Served(args, cwd, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def apps() -> Iterator[list[HotReload]]:
    """Collects the HotReload objects a test builds and closes them all at the end."""
    made: list[HotReload] = []
    yield made
    for app in made:
        app.close()


Write = Callable[[str, str], Path]


@pytest.fixture
def write(project: Path) -> Write:
    """Write a dedented file below the project root, creating its folders."""

    def write(rel: str, text: str) -> Path:
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def engines(project: Path) -> Iterator[Callable[..., Reloader]]:
    """Make engines (``Reloader``) on the project; each is closed after the test."""
    from hotmod.reloader import Reloader

    made: list[Reloader] = []

    def make(target: str = "app.wsgi:app", **options: object) -> Reloader:
        options.setdefault("leak_check_delay", 0.0)
        r = Reloader(target, **options)  # type: ignore[arg-type]
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# -- the framework proofs: one ``hotmod serve`` per test module ------------------------------
# A module declares TARGET (what ``hotmod serve`` is given), FIXTURE (its app under
# tests/fixtures/frameworks/) and PACKAGE (the app's package, which ``pkg`` names), and
# may define ``prepare(root)`` for what the framework's docs say to run before the first
# start. Modules that serve differently define their own fixtures.


@pytest.fixture(scope="module")
def app_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support import copy_fixture

    name = request.module.FIXTURE
    root = copy_fixture(name, tmp_path_factory.mktemp(name))
    prepare = getattr(request.module, "prepare", None)
    if prepare is not None:
        prepare(root)
    return root


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, app_root: Path) -> Iterator[Served]:
    """The app served with no flags; ``start_state`` is the generation and output after
    its first seconds with no edit."""
    from support import hotmod_serving, quiet_start

    with hotmod_serving(request.module.TARGET, app_root) as served:
        served.start_state = quiet_start(served)
        yield served


@pytest.fixture
def pkg(request: pytest.FixtureRequest, app_root: Path) -> Path:
    return app_root / request.module.PACKAGE


def _watchdog_version() -> str:
    from importlib.metadata import version

    return version("watchdog")


#: watchdog 7.1.1's inotify observer (Linux) can leave its descriptors open after
#: ``Observer.stop()`` and ``join()``: its reader closes them only when the stop
#: finds it waiting in ``select()``, so whether a given stop leaks is a race (33 over
#: 100 observers of 5 folders in a fresh process here; 0 with 7.1.0). It concerns
#: our watchdog backend on Linux only, which is chosen only by name there (the native
#: one is our own inotify). Not strict, as the race is; pinned to 7.1.1, so that any
#: other release runs the full assertions (7.1.0 does, in the lowest-versions run).
WATCHDOG_LEAKS_ON_STOP = pytest.mark.xfail(
    sys.platform.startswith("linux") and _watchdog_version() == "7.1.1",
    reason="watchdog 7.1.1's inotify observer may leave its descriptors open after stop() (a race)",
    strict=False,
)
