"""What the stale check (``reloader/_stale.py``) costs per retirement, on the janitor.

Each case runs in a fresh worker process, under ``reloader.Reloader`` with no
watcher and no server (``leak_check_delay=0``, so each retirement is checked at
once), and edits one module again and again: ``reload(paths=[...])``, then
``wait_idle()`` until the retirement and its checks have run. Timed on the janitor
by wrapping the leak watch's own methods:

- ``watch()``: at retirement, the weak references to what each replaced instance
  defines (the only new work when nothing is held);
- the leak check's looks (``_check_now``: the garbage collection the leak check
  always did, the liveness tests, and, when old code survived, the search);
- the search alone (``_search``: building the scope, following the
  referrers, naming the holders).

Four cases per app: the leak check without the stale check (``off``, the baseline:
the check switched off in the worker), with it and nothing held (``on``), with it
while a module of the generation that no plan touches keeps the edited module's
class in a list (``generation``: held data, as a clone hook's hand-over or
typing's caches; one search finds no holder outside), and while a library class
attribute holds it (``held``, as DRF's ``GenericAPIView.pagination_class``: named at
the first look, confirmed at a second; the leak check also describes the old
instance, which that class's methods keep alive, and needs that second look).

Apps: the Flask bench app (SQLite), and the generated trees of ``bench.scale`` at
1,000 and 5,000 modules, with a leaf edit (the leaf, its package and the target
reload) and, at 5,000, the deep edit (``core`` and its 200 importers: 200+
instances retired at once).

Run: ``python -m bench.stale_check [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._harness import REPO, AppCopy, fmt, log, scratch_dir

ROUNDS = {"full": 12, "quick": 4}


class LibraryView:
    """A library class that binds the app's class once, as DRF's GenericAPIView does
    (this module is never reloaded: it stands for site-packages)."""

    pagination_class: Any = None


# -- the worker ---------------------------------------------------------------------------


def _timed(cls: type, name: str, into: list[float]) -> None:
    original: Callable[..., Any] = getattr(cls, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    setattr(cls, name, timed)


def worker(app: str, root: Path, case: str, rounds: int) -> dict[str, Any]:
    """In its own process: load the app, then ``rounds`` edits of one module."""
    sys.path.insert(0, str(root))
    os.chdir(root)
    logging.getLogger("hotmod").setLevel(logging.CRITICAL)  # no log I/O in the timings
    from bench.stale_check import LibraryView  # by its name, not as __main__
    from hotmod.reloader import Reloader
    from hotmod.reloader._leaks import LeakWatch

    watch_ms: list[float] = []
    looks_ms: list[float] = []
    search_ms: list[float] = []
    _timed(LeakWatch, "watch", watch_ms)
    _timed(LeakWatch, "_check_now", looks_ms)
    _timed(LeakWatch, "_search", search_ms)

    if app == "flask":
        target, edited, held_attr = "app.wsgi:app", root / "app" / "views" / "pages.py", None
        text = edited.read_text()

        def version(n: int) -> str:
            return text.replace('MARKER = "', f'MARKER = "stale-bench-{n}-', 1)

        held_name, keeper = "app.views.pages", "app.config"
    else:
        spec = json.loads((root / "spec.json").read_text())
        target = "scaletree.app:app"
        edited = root / (spec["core"] if app.endswith("-deep") else spec["leaf"])
        from bench.scale import _core_source, _module_source

        def version(n: int) -> str:
            if app.endswith("-deep"):
                return _core_source(n + 1)
            return _module_source(spec["leaf_n"], False, n + 1)

        held_name = "scaletree." + ".".join(edited.relative_to(root / "scaletree").with_suffix("").parts)
        held_attr = None if app.endswith("-deep") else f"Thing{spec['leaf_n']}"
        keeper = "scaletree.core"
    engine = Reloader(target, roots=[str(root)], leak_check_delay=0.0)
    engine.load()
    modules = len(sys.modules)
    leaks = engine._retirement.leaks  # the bench's own look inside: switch the check off
    if case == "off":
        leaks._scope = None
    found: list[dict[str, Any]] = []
    retired: list[int] = []
    per_retirement: list[float] = []  # the looks' milliseconds, summed per retirement
    looks: list[int] = []
    try:
        for n in range(rounds):
            if case in ("held", "generation"):
                module = engine.current.modules[held_name]
                code = getattr(module, held_attr) if held_attr else _defined(module, held_name)
                del module
                if case == "held":
                    LibraryView.pagination_class = code
                    engine._registry.stale._reasons.clear()  # restart-only otherwise: measure again
                else:
                    vars(engine.current.modules[keeper]).setdefault("kept", []).append(code)
                del code
            before = len(looks_ms)
            tmp = edited.with_name(f".{edited.name}.tmp")
            tmp.write_text(version(n))
            os.replace(tmp, edited)
            engine.reload(paths=[str(edited)])
            if not engine.wait_idle(120):
                raise RuntimeError("the janitor did not finish within 120 s")
            retired.append(len(engine.stats()["history"][-1]["modules"]))
            per_retirement.append(sum(looks_ms[before:]))
            looks.append(len(looks_ms) - before)
            LibraryView.pagination_class = None
        found = engine.stats()["stale"]
    finally:
        engine.close()
    return {
        "app": app,
        "case": case,
        "rounds": rounds,
        "modules": modules,
        "retired_per_reload": statistics.median(retired),
        "watch_ms": watch_ms,
        "looks_ms": per_retirement,
        "looks": looks,
        "search_ms": search_ms,
        "holders": sorted({f["holder"] for f in found}),
    }


def _defined(module: Any, name: str) -> Any:
    """A class the module defines, else a function (the Flask view module has no class)."""
    mine = [v for v in vars(module).values() if callable(v) and getattr(v, "__module__", None) == name]
    return next((v for v in mine if isinstance(v, type)), mine[0])


# -- the parent -----------------------------------------------------------------------------


def _prepare(app: str, scratch: Path) -> Path:
    if app == "flask":
        return AppCopy.create(scratch, "app").root
    from bench.scale import build_tree

    size = int(app.split("-")[1])
    root = scratch / app
    spec = build_tree(root, size)
    (root / "spec.json").write_text(json.dumps(spec))
    return root


def _run_worker(app: str, root: Path, case: str, rounds: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update({
        "PYTHONPATH": f"{root}{os.pathsep}{REPO}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "BENCH_DATA_DIR": str(root / "var"),
        "BENCH_DB_OPEN_LOG": str(root / "db-opens.log"),
    })
    proc = subprocess.run(
        [sys.executable, "-m", "bench.stale_check", "--worker", app, str(root), case, str(rounds)],
        cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stale_check worker {app} {case} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(mode: str = "full") -> dict[str, Any]:
    rounds = ROUNDS[mode]
    apps = ["flask", "tree-1000"]
    if mode == "full":
        apps += ["tree-5000", "tree-5000-deep"]
    rows = []
    with scratch_dir("stale-check") as scratch:
        for app in apps:
            base = app.removesuffix("-deep")
            root = scratch / base if (scratch / base).exists() else _prepare(base, scratch)
            cases = ("off", "on") if app.endswith("-deep") else ("off", "on", "generation", "held")
            for case in cases:
                log(f"stale_check: {app}, {case}, {rounds} reloads")
                rows.append(_run_worker(app, root, case, rounds))
    return {"mode": mode, "rounds": rounds, "rows": rows, "loadavg": os.getloadavg()}


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Stale check cost per retirement, on the janitor ({result['rounds']} reloads per row;"
        f" load average at the end {fmt(result['loadavg'][0], 2)}). Medians in ms.",
        "",
        "| app | case | modules in process | instances retired | watch() | looks (sum per retirement)"
        " | search | holder named |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        looks = _median(r["looks"]) or 0
        lines.append(
            f"| {r['app']} | {r['case']} | {r['modules']} | {fmt(r['retired_per_reload'], 0)} "
            f"| {fmt(_median(r['watch_ms']), 2)} | {fmt(_median(r['looks_ms']), 1)} ({looks:.0f} look"
            f"{'s' if looks > 1 else ''}) | {fmt(_median(r['search_ms']), 1)} "
            f"| {', '.join(r['holders']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    parser.add_argument(
        "--worker", nargs=4, metavar=("APP", "ROOT", "CASE", "ROUNDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        app, root, case, rounds = args.worker
        print(json.dumps(worker(app, Path(root), case, int(rounds))))
        return 0
    result = run("quick" if args.quick else "full")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(render(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
