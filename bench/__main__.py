"""The benchmark suite: ``python -m bench [--quick] [--smoke] [--only NAME]...``.

Each section runs, saves its raw result as JSON under ``bench/out/sections/``,
and ``bench/RESULTS.md`` is rebuilt from the newest result of every section, so
``--only soak`` refreshes one section and keeps the others (each section says
its mode, date and command). ``--smoke`` runs every measurement once in a few
seconds and writes ``bench/out/RESULTS-smoke.md`` unless ``--output`` says
otherwise; it never touches ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _harness, chart
from bench._harness import BENCH_DIR, Pending, fmt, loadavg, log, machine


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    run: Callable[[str], dict[str, Any]]
    render: Callable[[dict[str, Any]], str]


def _save_to_serve(mode: str) -> dict[str, Any]:
    from bench import save_to_serve

    return save_to_serve.run(mode)


def _render_save_to_serve(result: dict[str, Any]) -> str:
    from bench import save_to_serve

    return save_to_serve.render(result)


def _breakdown(mode: str) -> dict[str, Any]:
    from bench import breakdown

    return breakdown.run(mode)


def _render_breakdown(result: dict[str, Any]) -> str:
    from bench import breakdown

    return breakdown.render(result)


def _overhead(mode: str) -> dict[str, Any]:
    try:
        from bench import overhead  # owned by the middleware engineer: main(quick) -> dict
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench.overhead", "hotmod", "hotmod.middleware"):
            raise
        raise Pending(f"`bench/overhead.py` is not available yet ({exc})") from exc
    result: dict[str, Any] = overhead.main(quick=mode != "full")
    return result


def _render_overhead(result: dict[str, Any]) -> str:
    try:
        from bench import overhead
    except ImportError:
        renderer = None
    else:
        renderer = getattr(overhead, "render", None)
    body = renderer(result) if callable(renderer) else _render_mapping(result)
    return f"## Request overhead\n\nFrom `bench/overhead.py` (`main(quick)`):\n\n{body}\n"


def _loop_lag(mode: str) -> dict[str, Any]:
    from bench import loop_lag

    return loop_lag.run(mode)


def _render_loop_lag(result: dict[str, Any]) -> str:
    from bench import loop_lag

    return loop_lag.render(result)


def _scale(mode: str) -> dict[str, Any]:
    from bench import scale

    return scale.run(mode)


def _render_scale(result: dict[str, Any]) -> str:
    from bench import scale

    return scale.render(result)


def _soak(mode: str) -> dict[str, Any]:
    from bench import soak

    return soak.run(mode)


def _render_soak(result: dict[str, Any]) -> str:
    from bench import soak

    return soak.render(result)


def _frameworks(mode: str) -> dict[str, Any]:
    from bench import frameworks

    return frameworks.run(mode)


def _render_frameworks(result: dict[str, Any]) -> str:
    from bench import frameworks

    return frameworks.render(result)


def _asgi_save_to_serve(mode: str) -> dict[str, Any]:
    from bench import asgi_save_to_serve

    return asgi_save_to_serve.run(mode)


def _render_asgi_save_to_serve(result: dict[str, Any]) -> str:
    from bench import asgi_save_to_serve

    return asgi_save_to_serve.render(result)


def _live_reload(mode: str) -> dict[str, Any]:
    from bench import live_reload

    return live_reload.run(mode)


def _render_live_reload(result: dict[str, Any]) -> str:
    from bench import live_reload

    return live_reload.render(result)


SECTIONS: dict[str, Section] = {
    s.name: s
    for s in (
        Section("save_to_serve", "Save-to-serve latency", _save_to_serve, _render_save_to_serve),
        Section("breakdown", "Breakdown: one reload in-process", _breakdown, _render_breakdown),
        Section("overhead", "Request overhead", _overhead, _render_overhead),
        Section("loop_lag", "Event-loop lag during reloads (ASGI)", _loop_lag, _render_loop_lag),
        Section("scale", "Scale", _scale, _render_scale),
        Section("soak", "Soak", _soak, _render_soak),
        Section("frameworks", "Save-to-serve per framework", _frameworks, _render_frameworks),
        Section(
            "asgi_save_to_serve",
            "Save-to-serve on ASGI (FastAPI)",
            _asgi_save_to_serve,
            _render_asgi_save_to_serve,
        ),
        Section(
            "live_reload",
            "Save → page shows the edit (live reload, headless Chromium)",
            _live_reload,
            _render_live_reload,
        ),
    )
}


def _render_mapping(result: Any) -> str:
    """A plain table for results whose owner ships no renderer."""
    if isinstance(result, dict) and isinstance(result.get("markdown"), str):
        return str(result["markdown"]) + "\n"
    lines = ["| measure | value |", "|---|---|"]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            lines.append(f"| {prefix} | {fmt(value, 3) if isinstance(value, float) else value} |")

    walk("", result)
    return "\n".join(lines) + "\n"


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def targets(sections: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of issues 6, 15, 21 and 22 that a section measured."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    sts = _dig(sections, "save_to_serve", "result")
    ours = _dig(sts, "hotmod")
    if ours and ours.get("median_ms") is not None:
        median = ours["median_ms"]
        rows.append(
            ("save-to-serve median <= 25 ms (one-module edit)", f"{median:.1f} ms", verdict(median <= 25.0))
        )
        peers = [
            p["peer"]
            for p in sts["pairings"]
            if p["peer"]["median_ms"] is not None and p["peer"]["status"] == "reloads"
        ]
        if peers:
            fastest = min(peers, key=lambda r: r["median_ms"])
            ratio = fastest["median_ms"] / median
            rows.append(
                (
                    ">= 15x faster than the fastest restart peer that reloads",
                    f"{ratio:.1f}x ({fastest['server']} {fastest['median_ms']:.0f} ms)",
                    verdict(ratio >= 15.0),
                )
            )
        share = _dig(sts, "own_share")
        if share and share.get("own_share_ms") is not None:
            rows.append(
                (
                    "hotmod's own share of save-to-serve <= 2 ms (issue 15)",
                    f"{share['own_share_ms']:.1f} ms (of which one probe "
                    f"{fmt(share.get('probe_median_ms'))} ms)",
                    verdict(share["own_share_ms"] <= 2.0),
                )
            )
        if share and share.get("engine_own_median_ms") is not None:
            own = share["engine_own_median_ms"]
            rows.append(
                (
                    "the engine's own work per 3-module plan <= 1 ms (issue 15)",
                    f"{own:.2f} ms",
                    verdict(own <= 1.0),
                )
            )
        rows.append(
            (
                "zero failed requests during hotmod reloads",
                f"{ours['failed_requests']} failed over {ours['edits']} reloads",
                verdict(ours["failed_requests"] == 0),
            )
        )
    overhead = _dig(sections, "overhead", "result")
    ns = _dig(overhead, "in_process", "production", "overhead_ns_paired_median")
    if isinstance(ns, int | float):
        rows.append(("per-request overhead < 2 us (production)", f"{ns:.0f} ns", verdict(ns < 2000)))
    ratio = _dig(overhead, "server", "ratio")
    if isinstance(ratio, int | float):
        rows.append(
            (
                "throughput loss < 3% under a real server",
                f"wrapped/bare = {ratio:.4f}",
                verdict(ratio >= 0.97),
            )
        )
    ns = _dig(overhead, "asgi_in_process", "raw", "production", "overhead_ns_paired_median")
    if isinstance(ns, int | float):
        rows.append(("per-request overhead < 2 us (ASGI, production)", f"{ns:.0f} ns", verdict(ns < 2000)))
    ratio = _dig(overhead, "asgi_server", "ratio")
    if isinstance(ratio, int | float):
        rows.append(
            (
                "throughput loss < 3% under uvicorn (ASGI)",
                f"wrapped/bare = {ratio:.4f}",
                verdict(ratio >= 0.97),
            )
        )
    soak = _dig(sections, "soak", "result")
    growth = _dig(soak, "growth")
    if growth:
        rows.append(
            (
                "soak: RSS growth < 10 MB over the reloads",
                f"{growth['rss_mib']} MiB over {soak['settings']['reloads']} reloads",
                verdict(growth["rss_mib"] < 10),
            )
        )
        keys = ("fds_after_first_sample", "threads_after_first_sample", "pg_backends")
        flat = [k for k in keys if growth.get(k) not in (0, None)]
        rows.append(
            (
                "soak: constant fds, threads, PostgreSQL backends (after the first sample)",
                f"fds {growth.get('fds_after_first_sample', 0):+d}, threads "
                f"{growth.get('threads_after_first_sample', 0):+d}, backends "
                f"{fmt(growth['pg_backends'])}",
                verdict(not flat),
            )
        )
        rows.append(("soak: zero leaked generations", str(growth["leaked"]), verdict(not growth["leaked"])))
    asgi_growth = _dig(soak, "asgi", "growth")
    if asgi_growth:
        rss = asgi_growth["rss_mib"]
        rows.append(("ASGI soak: RSS growth < 10 MB", f"{rss} MiB", verdict(rss < 10)))
        keys = ("fds_after_first_sample", "threads_after_first_sample", "pg_backends", "lifespans_running")
        still = [k for k in keys if asgi_growth.get(k) not in (0, None)]
        rows.append(
            (
                "ASGI soak: constant fds, threads, PostgreSQL backends, lifespans",
                ", ".join(still) or "all flat",
                verdict(not still),
            )
        )
        leaked = asgi_growth["leaked"]
        rows.append(("ASGI soak: zero leaked generations", str(leaked), verdict(not leaked)))
    asgi = _dig(sections, "asgi_save_to_serve", "result")
    if asgi:
        from bench import asgi_save_to_serve

        rows += asgi_save_to_serve.goals(asgi)
    live = _dig(sections, "live_reload", "result")
    if live:
        from bench import live_reload

        rows += live_reload.goals(live)
    return rows


def analysis(sections: dict[str, dict[str, Any]]) -> list[str]:
    """Where hotmod's save-to-serve milliseconds go, in words, from the stored numbers."""
    ours = _dig(sections, "save_to_serve", "result", "hotmod")
    split = _dig(sections, "soak", "result", "breakdown")
    inproc = _dig(sections, "breakdown", "result")
    if not ours or not split or not _dig(split, "reload", "n"):
        return []

    def med(data: Any, *keys: str) -> str:
        return fmt(_dig(data, *keys, "median_ms"))

    lines = [
        "## Where hotmod's save-to-serve time goes",
        "",
        f"Save-to-serve median {fmt(ours['median_ms'])} ms (Save-to-serve section). Split per "
        f"reload with the engine's own history over the soak's reloads (medians): edit → reload "
        f"start {med(split, 'detect')} ms (the inotify event; the watcher's cut, at once for a "
        f"file saved alone before and after a 10 ms settle window for a file's first save; "
        f"reading and planning); "
        f"executing the plan and swapping {med(split, 'reload')} ms; swap → first response "
        f"with the new text {med(split, 'serve')} ms, of which the request itself "
        f"{med(split, 'request')} ms against {med(split, 'steady_request')} ms for the next one.",
    ]
    if inproc:
        lines += [
            "",
            f"Without watcher and socket (Breakdown section) the same reload takes "
            f"{med(inproc, 'reload')} ms and its first request {med(inproc, 'first_request')} ms "
            f"(then {med(inproc, 'steady_request')} ms); the changed module alone compiles and "
            f"executes in {med(inproc, 'view_only')} ms, and the app factory alone takes "
            f"{med(inproc, 'factory')} ms. The plan re-executes the view and its "
            "importers, so the app factory runs again: a new `Flask` object, werkzeug compiling "
            "each URL rule, the schema check's database round trips; and the new app's Jinja "
            "environment compiles its templates on the first request. That share belongs to the "
            "app's shape (a factory imported by `app.wsgi`), not to hotmod; the watcher, the "
            "engine's per-reload bookkeeping and the path through the server do belong to hotmod.",
        ]
    share = _dig(sections, "save_to_serve", "result", "own_share")
    if share and share.get("own_share_ms") is not None:
        lines += [
            "",
            f"hotmod's own share (the median minus the app's own cost of the same edit, measured "
            f"in-process) is {fmt(share['own_share_ms'])} ms; {fmt(share.get('own_share_later_ms'))} "
            f"ms over the edits after each server's first. Of it, the engine's bookkeeping inside "
            f"`reload()` is {fmt(share['engine_own_median_ms'])} ms, and one probe of the idle "
            f"server costs {fmt(share.get('probe_median_ms'))} ms, client and server: the probe "
            "that shows the new text pays that, and the stale probe in flight at the swap delays "
            "it by half a probe on average. The rest is the watcher's cut and the stale probes "
            "answered while the plan runs: in one process they take turns with the plan's code "
            "on the GIL, which stretches the plan (compare its duration above with the Breakdown's).",
        ]
    lines += [
        "",
        "The 1 ms poll keeps one request in flight almost all the time; it shares the "
        "interpreter (GIL) with the reload thread in the same process, as a browser's requests "
        "would. Every figure here was taken on 2 CPUs shared with other work (see the load "
        "averages): medians move by tens of percent between runs, p95 and max more.",
        "",
    ]
    return lines


def _command(mode: str, only: Sequence[str]) -> str:
    flags = {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode]
    if os.environ.get("HOTMOD_BENCH_DB") == "sqlite":
        flags += " --sqlite"
    only_flags = "".join(f" --only {name}" for name in only)
    return f".venv/bin/python -m bench{flags}{only_flags}"


def render_results(
    sections: dict[str, dict[str, Any]], info: dict[str, Any], chart_name: str | None = None
) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        "# hotmod benchmark results",
        "",
        "Produced by the suite in `bench/` (`make bench`, `make bench-quick`); do not edit by"
        " hand. Every section below says how it was run and when.",
        "",
        "## Machine",
        "",
        f"- {info['nproc']} CPUs: {info['cpu']}; Linux {info['kernel']}",
        f"- Python {info['python']}; {packages}",
        f"- written {info['date_utc']} at commit {info['git']}; load average then {info['loadavg']}",
        "",
        "## Commands",
        "",
        "- `make bench` = `.venv/bin/python -m bench` (about 25 minutes: the ASGI and live-reload"
        " sections take 5 each)",
        "- `make bench-quick` = `.venv/bin/python -m bench --quick` (about 6 minutes)",
        "- one section: `.venv/bin/python -m bench --only NAME` with NAME in "
        + ", ".join(f"`{n}`" for n in SECTIONS),
        "- smoke (used by `tests/test_bench_smoke.py`): `.venv/bin/python -m bench --smoke`",
        "",
    ]
    checked = targets(sections)
    if checked:
        lines += [
            "## Targets (issues 6, 15, 21 and 22) against the latest results below",
            "",
            "| target | measured | verdict |",
            "|---|---|---|",
            *[f"| {t} | {m} | {v} |" for t, m, v in checked],
            "",
        ]
    if chart_name:
        lines += [
            f"![Save-to-serve median per server, WSGI and ASGI, log scale]({chart_name})",
            "",
            f"`{chart_name}` (drawn by `bench/chart.py` from the two save-to-serve sections below).",
            "",
        ]
    lines += analysis(sections)
    for name, section in SECTIONS.items():
        entry = sections.get(name)
        if entry is None:
            lines += [f"## {section.title}", "", "Not run yet.", ""]
            continue
        body = entry.get("result")
        header = (
            f"_Mode {entry['mode']}, run {entry['date_utc']} ({entry['seconds']:.0f} s):"
            f" `{entry['command']}`; load average {entry.get('load_before', '?')} before,"
            f" {entry.get('load_after', '?')} after (2 CPUs shared with other work)._"
        )
        if body is None and entry.get("pending"):
            lines += [f"## {section.title}", "", f"Pending: {entry['pending']}", ""]
            continue
        if body is None:
            lines += [
                f"## {section.title}",
                "",
                header,
                "",
                "**Failed:**",
                "",
                "```",
                entry.get("error", "").strip(),
                "```",
                "",
            ]
            continue
        try:
            text = section.render(body)
        except Exception as exc:  # a result stored by an older version of its section
            log(f"{section.title}: renderer failed ({exc!r}); showing the stored result plainly")
            text = (
                f"## {section.title}\n\n_Stored by an older version of this section; its"
                f" renderer failed ({type(exc).__name__}: {exc}). Rerun it with"
                f" `--only {name}`._\n\n{_render_mapping(body)}"
            )
        head, _, rest = text.partition("\n")
        lines += [head, "", header, "", rest.lstrip("\n"), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 2-minute subset")
    parser.add_argument("--smoke", action="store_true", help="each measurement once, seconds")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        default=[],
        help="run only this section (repeatable)",
    )
    parser.add_argument("--output", type=Path, help="where to write the Markdown results")
    parser.add_argument("--store", type=Path, help="folder for the raw JSON of each section")
    parser.add_argument(
        "--sqlite", action="store_true", help="run the app on SQLite even if PostgreSQL answers"
    )
    parser.add_argument(
        "--render", action="store_true", help="run nothing: rebuild the Markdown from stored results"
    )
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.sqlite:
        os.environ["HOTMOD_BENCH_DB"] = "sqlite"
    store = args.store or BENCH_DIR / "out" / ("sections-smoke" if mode == "smoke" else "sections")
    output = args.output or (
        BENCH_DIR / "out" / "RESULTS-smoke.md" if mode == "smoke" else BENCH_DIR / "RESULTS.md"
    )
    store.mkdir(parents=True, exist_ok=True)
    chosen = [] if args.render else args.only or list(SECTIONS)
    command = _command(mode, args.only)
    failures = 0
    started = time.monotonic()
    for name in chosen:
        section = SECTIONS[name]
        log(f"=== {section.title} ({mode}) ===")
        t0 = time.monotonic()
        entry: dict[str, Any] = {
            "mode": mode,
            "command": command,
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": loadavg(),
        }
        try:
            entry["result"] = section.run(mode)
        except Pending as exc:
            entry["result"] = None
            entry["pending"] = str(exc)
            log(f"{section.title}: pending: {exc}")
        except Exception:  # a broken section is reported in RESULTS.md, the others still run
            failures += 1
            entry["result"] = None
            entry["error"] = traceback.format_exc()
            log(f"{section.title} failed:\n{entry['error']}")
        entry["seconds"] = time.monotonic() - t0
        entry["load_after"] = loadavg()
        (store / f"{name}.json").write_text(json.dumps(entry, indent=2, default=str))
        log(f"{section.title}: {entry['seconds']:.1f} s")
    saved = {}
    for name in SECTIONS:
        path = store / f"{name}.json"
        if path.exists():
            saved[name] = json.loads(path.read_text())
    output.parent.mkdir(parents=True, exist_ok=True)
    chart_path = output.with_name("save_to_serve.svg")
    try:
        drawn = chart.write(saved, chart_path)
    except Exception:  # a chart that fails to draw must not cost the results
        log(f"chart failed:\n{traceback.format_exc()}")
        drawn = False
    output.write_text(render_results(saved, machine(), chart_path.name if drawn else None))
    log(f"wrote {output} in {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through every ``finally``: the servers' process groups are
    # killed there, as they are on Ctrl-C.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _harness.log("python -m bench " + " ".join(sys.argv[1:]))
    raise SystemExit(main())
