"""Where a reload's milliseconds go, in-process, without watcher or HTTP.

The Flask bench app is loaded by ``reloader.Reloader`` in a fresh worker
process; then, again and again, ``app/views/pages.py`` is rewritten and
``Reloader.reload(paths=[...])`` is timed (the plan: the view and its
importers), then the first request on the new generation (werkzeug's test
client, no socket) and a second one. One more reload and first request run
under cProfile, and the functions with the most cumulative time are listed:
that is the floor under save-to-serve once the watcher's debounce and the
server are taken away.

Run alone: ``python -m bench.breakdown [--quick|--smoke]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._harness import (
    REPO,
    AppCopy,
    Pending,
    fmt,
    log,
    postgres_dsn,
    scratch_dir,
    summary_ms,
)

ROUNDS = {"full": 50, "quick": 15, "smoke": 3}


def worker(root: Path, rounds: int) -> dict[str, Any]:
    """Runs in its own process, in the app copy's folder."""
    sys.path.insert(0, str(root))
    os.chdir(root)
    from werkzeug.test import Client

    from hotmod.reloader import Reloader

    copy = AppCopy(
        root=root,
        view=root / "app" / "views" / "pages.py",
        original=(root / "app" / "views" / "pages.py").read_text(),
        open_log=root / "db-opens.log",
    )
    t0 = time.perf_counter()
    engine = Reloader("app.wsgi:app", roots=[str(root)])
    engine.load()
    load_s = time.perf_counter() - t0
    Client(engine.current.target).get("/")
    reload_s: list[float] = []
    app_exec_s: list[float] = []  # of reload_s: the app's own code (ReloadEvent.exec_ms)
    first_s: list[float] = []
    steady_s: list[float] = []
    modules: list[str] = []

    def one() -> tuple[float, float, float, bytes]:
        needle = copy.edit(atomic=True)
        t0 = time.perf_counter()
        engine.reload(paths=[str(copy.view)])
        t1 = time.perf_counter()
        client = Client(engine.current.target)
        body = client.get("/").get_data()
        t2 = time.perf_counter()
        client.get("/").close()
        t3 = time.perf_counter()
        if needle not in body:
            raise RuntimeError(f"reload {copy.edits} did not serve {needle!r}")
        return t1 - t0, t2 - t1, t3 - t2, needle

    try:
        for _ in range(rounds):
            r, f, s, _ = one()
            reload_s.append(r)
            app_exec_s.append(engine.stats()["history"][-1]["exec_ms"] / 1000)
            first_s.append(f)
            steady_s.append(s)
        view_only_s, factory_s = _floors(copy, engine)
        history = engine.stats()["history"]
        modules = list(history[-1]["modules"]) if history else []
        profiler = cProfile.Profile()
        profiler.enable()
        one()
        profiler.disable()
    finally:
        engine.close()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(25)
    return {
        "view_only": summary_ms(view_only_s),
        "factory": summary_ms(factory_s),
        "load_s": load_s,
        "reload": summary_ms(reload_s),
        "app_exec": summary_ms(app_exec_s),
        "engine_own": summary_ms([r - a for r, a in zip(reload_s, app_exec_s, strict=True)]),
        "first_request": summary_ms(first_s),
        "steady_request": summary_ms(steady_s),
        "modules": modules,
        "profile": _trim(text.getvalue(), root),
    }


def _floors(copy: AppCopy, engine: Any, rounds: int = 20) -> tuple[list[float], list[float]]:
    """The changed module alone (compile + execute in a fresh namespace), and the app
    factory alone: what a plan of one module would cost, and what its importers add."""
    source = copy.view.read_text()
    create_app = engine.current.modules["app"].create_app
    view_only: list[float] = []
    factory: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        exec(compile(source, str(copy.view), "exec"), {"__name__": "app.views.pages_floor"})
        view_only.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        create_app()
        factory.append(time.perf_counter() - t0)
    return view_only, factory


def _trim(report: str, root: Path) -> str:
    """Keep the table of a pstats report, with paths shortened to what matters."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    prefixes = (
        (f"{sys.prefix}/lib/python3.11/site-packages/", ""),
        (f"{sys.base_prefix}/lib/python3.11/", ""),
        (f"{root}/", "<app copy>/"),
        (f"{REPO}/", ""),
    )
    out = []
    for line in lines[start:]:
        if not line.strip():
            continue
        for prefix, replacement in prefixes:
            line = line.replace(prefix, replacement)
        out.append(line)
    return "\n".join(out)


def run(mode: str = "full", *, dsn: str | None = None) -> dict[str, Any]:
    try:
        from hotmod.reloader import Reloader  # noqa: F401
    except ImportError as exc:
        raise Pending(f"the engine (`reloader.Reloader`) is not available yet ({exc})") from exc
    dsn = postgres_dsn() if dsn is None else dsn
    rounds = ROUNDS[mode]
    with scratch_dir("breakdown") as scratch:
        copy = AppCopy.create(scratch, "app")
        env = copy.env(database_url=dsn, application_name=f"hotmod-bench-breakdown-{scratch.name}")
        env["PYTHONPATH"] = f"{copy.root}{os.pathsep}{REPO}"
        log(f"breakdown: {rounds} in-process reloads of the Flask app")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.breakdown", "--worker", str(copy.root), str(rounds)],
            cwd=copy.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"breakdown worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({"mode": mode, "rounds": rounds, "database": "postgresql" if dsn else "sqlite"})
    return result


def render(result: dict[str, Any]) -> str:
    lines = [
        "## Breakdown: one reload in-process",
        "",
        f"The Flask bench app ({result['database']}) under `reloader.Reloader` in one process, "
        f"no watcher, no socket: `reload(paths=[app/views/pages.py])` then two requests through "
        f"werkzeug's test client, {result['rounds']} times. The plan reloads "
        f"{', '.join(f'`{m}`' for m in result['modules'])}.",
        "",
        "| step | median ms | p95 ms | max ms |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("view_only", "floor: compile + execute `app/views/pages.py` alone"),
        ("factory", "the app factory alone (`create_app()`, re-run because `app` imports the view)"),
        ("reload", "`Reloader.reload()` (plan, execute, swap)"),
        ("app_exec", "of which the app's own code (the plan's modules and the factory: `exec_ms`)"),
        ("engine_own", "of which the engine's own work (the rest)"),
        ("first_request", "first request on the new generation"),
        ("steady_request", "next request"),
    ):
        r = result.get(key)
        if r is None:  # a result stored before this step was measured
            continue
        lines.append(f"| {label} | {fmt(r['median_ms'])} | {fmt(r['p95_ms'])} | {fmt(r['max_ms'])} |")
    lines += [
        "",
        "cProfile of one more reload plus its first request (top 25 by cumulative time):",
        "",
        "```",
        result["profile"],
        "```",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), int(args.worker[1]))))
        return 0
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    print(render(run(mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
