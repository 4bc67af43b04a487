"""Rule 2 of issue 20: a plan that fails in this process but loads in a fresh one
asks for a restart, and says why; a plan whose code is broken stays an error.

A real fresh interpreter answers each time (the probe is never stubbed): the
registry below lives in a module outside the root, so it outlives generations as a
framework's registry does, and it refuses a name given twice, as Flask's blueprints,
SQLAlchemy's ``MetaData`` and Django's app registry do."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Write
from support import module_source

from hotmod.reloader import Reloader, ReloadError

REGISTRY = module_source("registry")

MODELS = """
import registry

registry.register("user")
LABEL = {label!r}
"""

WSGI = """
from app import models

def app(environ, start_response):
    return [models.LABEL.encode()]
"""


@pytest.fixture
def app(write: Write, project: Path) -> Path:
    write("registry.py", REGISTRY)  # outside the root: shared by every generation
    write("app/__init__.py", "")
    write("app/models.py", MODELS.format(label="one"))
    write("app/wsgi.py", WSGI)
    return project / "app"


def restarts(r: Reloader) -> list[object]:
    seen: list[object] = []
    r.subscribe(lambda event: seen.append(event) if event.kind == "restart_needed" else None)
    return seen


def test_a_plan_that_fails_only_on_state_outliving_generations_asks_for_a_restart(
    app: Path, write: Write, engines: Callable[..., Reloader], caplog: pytest.LogCaptureFixture
) -> None:
    r = engines(probe=True)
    r.load()
    seen = restarts(r)
    write("app/models.py", MODELS.format(label="two"))
    with pytest.raises(ReloadError, match="already registered"):
        r.reload([app / "models.py"])
    assert r.last_error is not None  # the error first, while the fresh process loads
    assert r.wait_probes(60)
    # A fresh interpreter loaded the same files: the file is not what is wrong.
    assert r.last_error is None
    assert r.restart_needed is not None
    reason = r.restart_needed["reason"]
    assert "fails in this process (ValueError: 'user' is already registered)" in reason
    assert "loads in a fresh one" in reason
    assert str(app / "models.py") in r.restart_needed["files"]
    assert [e.kind for e in seen] == ["restart_needed"]  # said once
    assert r.current.number == 1  # the last good generation keeps serving


def test_broken_code_stays_an_error_when_a_fresh_process_fails_too(
    app: Path, write: Write, engines: Callable[..., Reloader], caplog: pytest.LogCaptureFixture
) -> None:
    """The library raises (as for state it keeps), but a fresh process fails the same way."""
    r = engines(probe=True)
    r.load()
    write("app/models.py", MODELS.format(label="two").replace('register("user")', "register(None)"))
    with pytest.raises(ReloadError, match="must be a string"):
        r.reload([app / "models.py"])
    failure = r.last_error
    assert failure is not None
    with caplog.at_level(logging.INFO, logger="hotmod"):
        assert r.wait_probes(60)
    assert r.last_error is failure
    assert r.restart_needed is None
    assert "a fresh process fails to load app.wsgi:app too (TypeError: a name must be a string" in caplog.text


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("undefined_name\n", "raised by the application's own code"),
        ("import hm_probe_nowhere\n", "a module the same sys.path cannot find"),
        ("def (:\n", "a syntax error"),
    ],
)
def test_a_failure_that_is_the_code_s_own_for_certain_is_not_asked_about(
    app: Path, write: Write, engines: Callable[..., Reloader], source: str, why: str
) -> None:
    r = engines(probe=True)
    r.load()
    write("app/models.py", source + MODELS.format(label="two"))
    with pytest.raises(ReloadError):
        r.reload([app / "models.py"])
    assert r.wait_probes(0.0), why  # no probe was even started
    assert r.last_error is not None and r.restart_needed is None


def test_a_syntax_error_names_its_own_line(app: Path, write: Write, engines: Callable[..., Reloader]) -> None:
    r = engines(probe=True)
    r.load()
    write("app/models.py", "X = 1\ndef (:\n")
    with pytest.raises(ReloadError) as caught:
        r.reload([app / "models.py"])
    assert (caught.value.failure.file, caught.value.failure.line) == (str(app / "models.py"), 2)


def test_the_fix_of_a_broken_edit_is_not_turned_into_a_restart_by_a_late_answer(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    """The probe answers about the failure it was asked about: once a newer plan has
    decided (here, a plan that loads), its answer changes nothing."""
    r = engines(probe=True)
    r.load()
    write("app/models.py", MODELS.format(label="two"))
    with pytest.raises(ReloadError):
        r.reload([app / "models.py"])
    # The registry forgets (as after a framework's own reset): the next plan loads.
    import registry  # type: ignore[import-not-found]

    registry.names.clear()
    assert r.reload([app / "models.py"]) == 2
    assert r.wait_probes(60)
    assert r.restart_needed is None
    assert r.last_error is None


def test_probes_are_off_with_the_environment_variable(
    app: Path, write: Write, engines: Callable[..., Reloader], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTMOD_PROBE", "0")
    r = engines()
    r.load()
    write("app/models.py", MODELS.format(label="two"))
    with pytest.raises(ReloadError):
        r.reload([app / "models.py"])
    assert r.wait_probes(0.0)
    assert r.last_error is not None and r.restart_needed is None


ADMIN = """
import registry
registry.register("admin")
"""

DISCOVERING_INIT = """
import importlib, pkgutil, os
# A framework's autodiscovery: every admin module of the package, found by name.
for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
    if info.name.endswith("admin"):
        importlib.import_module(f"{__name__}.{info.name}")
"""


def test_a_new_module_file_that_a_fresh_process_would_discover_asks_for_a_restart(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    write("app/__init__.py", DISCOVERING_INIT)
    r = engines(probe=True)
    r.load()
    new = write("app/admin.py", ADMIN)
    r.reload([new])
    assert r.wait_probes(60)
    assert r.restart_needed is not None
    assert "app.admin" in r.restart_needed["modules"]
    assert "imports at start-up" in r.restart_needed["reason"]
    assert str(new) in r.restart_needed["files"]


def test_a_new_module_file_nothing_imports_anywhere_changes_nothing(
    app: Path, write: Write, engines: Callable[..., Reloader]
) -> None:
    r = engines(probe=True)
    r.load()
    new = write("app/helpers.py", "X = 1\n")
    r.reload([new])
    assert r.wait_probes(60)
    assert r.restart_needed is None


def test_closing_the_engine_stops_a_running_probe(
    app: Path, write: Write, engines: Callable[..., Reloader], project: Path
) -> None:
    write("app/models.py", MODELS.format(label="one") + "\nimport time\nimport os\n"
          "if os.environ.get('HOTMOD_PROBE_CHILD'):\n    time.sleep(120)\n")
    r = engines(probe=True)
    r.load()
    write("app/models.py", MODELS.format(label="two") + "\nimport time\nimport os\n"
          "if os.environ.get('HOTMOD_PROBE_CHILD'):\n    time.sleep(120)\n")
    with pytest.raises(ReloadError):
        r.reload([app / "models.py"])
    r.close()
    assert r.wait_probes(10)  # the child was killed, not waited for two minutes
