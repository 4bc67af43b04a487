"""``hotmod check``: the reader of hook mistakes, on the bad and clean examples of
tests/fixtures/check/ and on the demo app, through its function and through the
installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hotmod.middleware import cli
from hotmod.middleware._check import check_paths

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "check"
#: The demo's modules, its handler folder's included (a count, so a new demo file
#: does not break the summaries below).
DEMO_FILES = len(list((REPO / "demo_app").rglob("*.py")))
CLEAN_FILES = len(list((FIXTURES / "clean").glob("*.py")))
BAD = FIXTURES / "bad"
SCRIPT = Path(sys.executable).parent / "hotmod"

GUARD = "at module level runs again on every reload"
NEVER_RELEASED = "each time and never releases the old one"

#: Every warning each bad example must produce: its line, and phrases that say what
#: is wrong and what to do. No other warning may appear.
EXPECTED: dict[str, list[tuple[int, tuple[str, ...]]]] = {
    "unguarded_pool.py": [
        (5, ("ConnectionPool(...) " + GUARD, "opens another connection pool " + NEVER_RELEASED,
             "guard it with 'if \"pool\" not in globals():'")),
    ],
    "no_hooks.py": [
        (5, ("sqlite3.connect(...) " + GUARD, "opens another connection " + NEVER_RELEASED,
             "guard it with 'if \"conn\" not in globals():'",
             'hand "conn" to the new instance in __mp_clone__(module)', "close it in __mp_purge__()")),
        (6, ("open(...) " + GUARD, "keeps another open file " + NEVER_RELEASED,
             "guard it with 'if \"audit\" not in globals():'", "close it in __mp_purge__()")),
    ],
    "guarded_without_clone.py": [
        (6, ("socket.create_server(...) " + GUARD,
             "a new instance starts empty and its guard never skips it", "opens another socket each time;",
             'hand "listener" to the new instance in __mp_clone__(module)')),
    ],
    "clone_without_purge.py": [
        (6, ("ThreadPoolExecutor(...) at module level starts a thread pool that __mp_clone__ hands over",
             "there is no __mp_purge__: nothing releases it at shutdown, after a failed clone",
             "define __mp_purge__() and shut it down there")),
    ],
    "guard_not_handed_over.py": [
        (6, ("sqlalchemy.create_engine(...) at module level is guarded by 'if \"engine\" not in globals():'",
             'but __mp_clone__ does not hand "engine" over, so the guard is true on every reload',
             "creates another database engine with its pool " + NEVER_RELEASED,
             'hand "engine" over in __mp_clone__')),
        (10, ('__mp_clone__ hands over "db_engine", which this module never defines',
              "hand over the name the module assigns")),
    ],
    "typos.py": [
        (8, ("ConnectionPool(...) at module level is guarded by 'if \"pol\" not in globals():'",
             "a name this module never assigns (a typo?), so the guard is true on every reload",
             'test "pool" in the guard')),
        (16, ("the guard 'if \"stats\" not in globals():' tests a name this module never assigns",
              "its block runs again on every reload", "test the name the block assigns")),
        (22, ('__mp_clone__ reads "lok", which this module never defines',
              "the clone raises NameError and nothing is handed over")),
        (23, ('__mp_clone__ hands over "cahce", which this module never defines (a typo?)',)),
    ],
    "hook_signatures.py": [
        (6, ("__mp_clone__ takes no parameter, but hotmod calls __mp_clone__(new_module)",
             "give it one parameter, the new module")),
        (10, ('__mp_purge__ has a required parameter "clear_cache" other than the module',
              "it raises TypeError and nothing is closed", 'give "clear_cache" a default or drop it')),
    ],
    "async_clone.py": [
        (10, ("__mp_clone__ is async: clone runs on the reloading thread, off any event loop",
              "hotmod refuses it and hands nothing over", "an async __mp_purge__ is fine")),
    ],
    "threads_and_registrations.py": [
        (11, ("log.addHandler(...) " + GUARD, "adds another logging handler " + NEVER_RELEASED,
              "guard it with 'if \"handler\" not in globals():'",
              "remove it with removeHandler() in __mp_purge__()")),
        (20, ("threading.Thread(...).start() " + GUARD, "starts another thread " + NEVER_RELEASED,
              "keep it in a global and guard it", "stop it (set an Event it checks, then join it)")),
        (21, ("atexit.register(...) " + GUARD, "each one keeps its instance alive",
              "do that cleanup in __mp_purge__() instead, which hotmod runs at shutdown")),
        (22, ("signal.signal(...) " + GUARD, "chains every old instance and keeps them all alive",
              "put the previous handler back in __mp_purge__()")),
        (25, ("@atexit.register " + GUARD, "do that cleanup in __mp_purge__() instead")),
    ],
    "schedulers.py": [
        (14, ("scheduler.start() " + GUARD, "starts another scheduler each time;",
              "guard it with 'if \"scheduler\" not in globals():'",
              'hand "scheduler" to the new instance in __mp_clone__(module)')),
        (15, ("schedule.every(...) " + GUARD, "adds another scheduled job each time;")),
    ],
    "via_local_function.py": [
        (13, ("_connect() (it calls socket.create_connection(...) at line 7) at module level",
              "opens another socket each time;", 'hand "cache_server" to the new instance in __mp_clone__')),
    ],
    "ignored.py": [
        # Line 4 carries the comment; on line 6 the words are inside a string only.
        (5, ("open(...) " + GUARD, 'hand "audit" to the new instance in __mp_clone__(module)')),
        (6, ("open(...) " + GUARD, 'hand "notes" to the new instance')),
    ],
}


def test_every_bad_example_has_its_expected_warnings_listed() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in BAD.glob("*.py"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_example_warns_at_its_lines_saying_what_is_wrong_and_what_to_do(name: str) -> None:
    path = BAD / name
    report = check_paths([path])
    assert report.files == (str(path),)
    assert [f.line for f in report.findings] == [line for line, _ in EXPECTED[name]]
    for finding, (line, phrases) in zip(report.findings, EXPECTED[name], strict=True):
        assert str(finding).startswith(f"{path}:{line}: ")
        for phrase in phrases:
            assert phrase in finding.message, f"{name}:{line}: {phrase!r} not in {finding.message!r}"
    assert not report.clean


def test_the_clean_examples_and_the_demo_app_come_out_clean() -> None:
    report = check_paths([FIXTURES / "clean", REPO / "demo_app"])
    assert report.findings == ()
    assert len(report.files) == CLEAN_FILES + DEMO_FILES
    assert report.summary() == f"hotmod check: {CLEAN_FILES + DEMO_FILES} files checked, no warnings"


def test_a_file_that_does_not_parse_is_reported_at_its_line_with_the_syntax_error() -> None:
    path = FIXTURES / "syntax_error.txt"
    [finding] = check_paths([path]).findings
    assert str(finding) == f"{path}:3: SyntaxError: '(' was never closed"


def test_folders_are_walked_recursively_without_excluded_folders_and_virtualenvs(tmp_path: Path) -> None:
    example = BAD / "no_hooks.py"
    kept = [tmp_path / "shop" / "db.py", tmp_path / "shop" / "api" / "v1" / "db.py"]
    skipped = [
        tmp_path / ".venv" / "lib" / "db.py",
        tmp_path / "shop" / "__pycache__" / "db.py",
        tmp_path / ".git" / "hooks" / "db.py",
        tmp_path / "node_modules" / "db.py",
        tmp_path / "env" / "lib" / "db.py",  # a virtualenv by its pyvenv.cfg, whatever its name
    ]
    for path in kept + skipped:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example, path)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "shop" / "notes.txt").write_text("open('not python')\n")

    report = check_paths([tmp_path, kept[0]])  # a file named twice is read once

    assert sorted(report.files) == sorted(str(p) for p in kept)
    assert sorted({f.path for f in report.findings}) == sorted(str(p) for p in kept)
    assert report.summary() == "hotmod check: 4 warnings in 2 files (2 files checked)"


def test_a_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as raised:
        check_paths([BAD, missing])
    assert raised.value.filename == str(missing)


def run_check(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"no console script at {SCRIPT}: run `make install`"
    return subprocess.run(
        [str(SCRIPT), "check", *map(str, paths)], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_the_command_prints_each_warning_and_a_summary_and_exits_1() -> None:
    result = run_check("tests/fixtures/check/bad")
    expected = check_paths([BAD])
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    # The same warnings as the function's, under the path as the command was given it.
    assert lines[:-1] == [str(f).replace(f"{REPO}/", "") for f in expected.findings]
    assert lines[-1] == "hotmod check: 24 warnings in 12 files (12 files checked)"
    for name, warnings in EXPECTED.items():
        for line, phrases in warnings:
            assert any(
                entry.startswith(f"tests/fixtures/check/bad/{name}:{line}: ") and phrases[0] in entry
                for entry in lines
            ), f"{name}:{line} missing from the output"


def test_the_command_is_silent_but_for_its_summary_on_the_demo_app_and_exits_0() -> None:
    result = run_check("demo_app", "tests/fixtures/check/clean")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"hotmod check: {CLEAN_FILES + DEMO_FILES} files checked, no warnings\n", ""
    )


def test_the_command_reports_a_syntax_error_as_file_and_line_without_a_traceback() -> None:
    result = run_check("tests/fixtures/check/syntax_error.txt", "demo_app")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "tests/fixtures/check/syntax_error.txt:3: SyntaxError: '(' was never closed",
        f"hotmod check: 1 warning in 1 file ({1 + DEMO_FILES} files checked)",
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_the_command_refuses_a_missing_path_in_one_line_and_needs_at_least_one() -> None:
    result = run_check("demo_app", "no/such/folder")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "hotmod: error: no such file or folder: no/such/folder\n"
    no_path = run_check()
    assert (no_path.returncode, no_path.stdout) == (2, "")
    assert no_path.stderr.startswith("hotmod: error: the following arguments are required: PATH")


def test_a_file_name_with_control_characters_prints_inert_one_line_per_warning(tmp_path: Path) -> None:
    hostile = tmp_path / "db\nhotmod check: 0 files checked, no warnings\x1b[2K.py"
    shutil.copy(BAD / "no_hooks.py", hostile)
    result = run_check(tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # two warnings and the summary
    assert all("\\nhotmod check: 0 files checked, no warnings\\x1b[2K.py:" in line for line in lines[:2])
    assert "\x1b" not in result.stdout


def test_main_dispatches_check_and_returns_its_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(FIXTURES / "clean")]) == 0
    assert cli.main(["check", str(BAD / "async_clone.py")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "hotmod check: 4 files checked, no warnings"
    assert out[1].startswith(f"{BAD / 'async_clone.py'}:10: __mp_clone__ is async")
