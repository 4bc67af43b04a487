"""The wheel as users install it: one import name, no demo, tests or bench, no
psycopg without the extra, and a project with its own ``middleware.py`` and
``reloader.py`` served from a fresh virtualenv.

The wheel is built from a clean copy of the working tree (the files git tracks or
would track), as CI builds it from a fresh clone.
"""

from __future__ import annotations

import email.parser
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from support import Served, get, wait_until, write

import hotmod

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "user_project"


def run(args: list[str], cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the wheel, the build's output)."""
    checkout = tmp_path_factory.mktemp("checkout")
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    dist = tmp_path_factory.mktemp("dist")
    build = run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(checkout)]
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], build.stdout + build.stderr


def test_the_wheel_installs_one_import_name_and_no_demo_tests_or_bench(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"hotmod-{hotmod.__version__}.dist-info"
    assert {name.split("/")[0] for name in names} == {"hotmod", dist_info}
    for part in ("demo_app", "tests", "bench", "conftest"):
        assert not [n for n in names if part in n], part
    for expected in (
        "hotmod/__init__.py",
        "hotmod/__main__.py",
        "hotmod/py.typed",
        "hotmod/reloader/_engine.py",
        "hotmod/middleware/cli.py",
        f"{dist_info}/licenses/LICENSE",
    ):
        assert expected in names


def test_the_wheel_metadata_has_the_version_license_and_psycopg_only_in_the_extra(
    built: tuple[Path, str],
) -> None:
    wheel, _ = built
    dist_info = f"hotmod-{hotmod.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert metadata["Version"] == hotmod.__version__
    assert metadata["License-Expression"] == "MIT"
    requires = metadata.get_all("Requires-Dist") or []
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("[")[0] for r in plain) == ["watchdog", "werkzeug"]
    psycopg = [r for r in requires if r.startswith("psycopg")]
    assert psycopg and all('extra == "postgres"' in r for r in psycopg)
    assert metadata.get_all("Project-URL")
    assert "hotmod = hotmod.middleware.cli:main" in entry_points


def test_the_build_warns_of_nothing_deprecated(built: tuple[Path, str]) -> None:
    _, output = built
    assert "Deprecat" not in output, output


def test_a_fresh_venv_with_the_wheel_serves_a_project_that_has_its_own_middleware_and_reloader(
    built: tuple[Path, str], tmp_path: Path, port: int, served: Callable[..., Served]
) -> None:
    wheel, _ = built
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python, script = venv / "bin" / "python", venv / "bin" / "hotmod"
    run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        timeout=300,
    )

    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    assert run([str(script), "--version"], cwd=project).stdout.strip() == f"hotmod {hotmod.__version__}"
    assert run([str(python), "-m", "hotmod", "--version"], cwd=project).stdout.strip() == (
        f"hotmod {hotmod.__version__}"
    )
    frozen = run([str(python), "-m", "pip", "freeze"]).stdout.lower()
    assert "psycopg" not in frozen
    assert "hotmod" in frozen and "werkzeug" in frozen and "watchdog" in frozen
    # The documented import works in a folder that has a middleware.py of its own.
    run([str(python), "-c", "from hotmod import HotReload, Reloader"], cwd=project)

    server = served(["serve", "app:app", "--port", str(port)], project, command=[str(script)])
    server.wait_output(lambda out: "serving app:app" in out, "the serving line")
    assert get(port) == (200, "one")
    write(project / "reloader.py", 'VERSION = "two"\n')
    wait_until(lambda: get(port)[1] == "two", what="the edit of the user's reloader.py")
    # The reload line names the user's module. It is printed by an event subscriber
    # after the swap, so a request can see the new code first: wait for it (bounded).
    server.wait_output(lambda out: "reloader" in out, "the reload line naming the user's reloader")
    assert server.stop(signal.SIGTERM) == 0, server.err()
