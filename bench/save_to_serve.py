"""Save-to-serve latency: hotmod against the process-restart reloaders, A B A B.

For each peer, rounds alternate: a fresh ``hotmod serve`` (A) does a batch of
edits, then the peer (B) does the same batch, and again, so that both see the
same machine at the same time. Each server runs the Flask bench app from its
own tmp copy, alone in its own process group, on a free 127.0.0.1 port.

One edit: change ``MARKER`` in ``app/views/pages.py`` (atomic rename and
in-place write alternate), then GET ``/`` over a fresh connection every 1 ms
until the new marker is served. Latency runs from the moment the edit landed to
the end of that response. Every refused or reset connection, timeout and 5xx on
the way counts as a failed request; a short window after the new text appears
counts failures and stale answers too (a restart that fires twice). Database
connections opened by the app are counted by the app itself (one byte appended
per open, across process restarts), PostgreSQL backends by ``application_name``.

Run alone: ``python -m bench.save_to_serve [--quick|--smoke] [--peer NAME]...``
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._harness import (
    VENV_BIN,
    AppCopy,
    Server,
    emit,
    fmt,
    free_port,
    hotmod_cli,
    http_get,
    leaf_pid,
    log,
    mode_of,
    pg_backends,
    poll_until,
    postgres_dsn,
    probe_window,
    scratch_dir,
    section_parser,
    summary_ms,
)

HOTMOD = "hotmod"
BASELINE = "hotmod-baseline"


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    argv: Callable[[int], list[str]]


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


CONTENDERS: dict[str, Contender] = {
    HOTMOD: Contender(
        HOTMOD,
        "`hotmod serve app.wsgi:app --production`",
        lambda port: [
            str(VENV_BIN / "hotmod"),
            "serve",
            "app.wsgi:app",
            "--production",
            "--port",
            str(port),
        ],
    ),
    "werkzeug-stat": Contender(
        "werkzeug-stat",
        'werkzeug `run_simple(use_reloader=True, reloader_type="stat")`',
        lambda port: _python("serve.py", "werkzeug", "--port", str(port), "--reloader", "stat"),
    ),
    "werkzeug-watchdog": Contender(
        "werkzeug-watchdog",
        'werkzeug `run_simple(use_reloader=True, reloader_type="watchdog")`',
        lambda port: _python("serve.py", "werkzeug", "--port", str(port), "--reloader", "watchdog"),
    ),
    "hupper": Contender(
        "hupper",
        "`hupper -m serve waitress` (hupper restarting a waitress worker)",
        lambda port: [str(VENV_BIN / "hupper"), "-m", "serve", "waitress", "--port", str(port)],
    ),
    "hupper-fast": Contender(
        "hupper-fast",
        "hupper at its fastest setting: `hupper.start_reloader(reload_interval=0.1)` restarting"
        " a waitress worker",
        lambda port: _python("serve.py", "waitress", "--port", str(port), "--hupper-interval", "0.1"),
    ),
    "flask-run": Contender(
        "flask-run",
        "`flask --app app.wsgi:app run --reload` (werkzeug's reloader, type auto: watchdog)",
        lambda port: [
            str(VENV_BIN / "flask"),
            "--app",
            "app.wsgi:app",
            "run",
            "--reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    ),
    # hotmod against itself: HOTMOD_BASELINE_BIN names the `hotmod` script of another
    # install (an earlier commit's checkout: `git worktree add ../before COMMIT && cd
    # ../before && make install`), served and edited exactly as hotmod is.
    BASELINE: Contender(
        BASELINE,
        "`hotmod serve app.wsgi:app --production` of the install `HOTMOD_BASELINE_BIN` names",
        lambda port: [
            os.environ.get("HOTMOD_BASELINE_BIN", "HOTMOD_BASELINE_BIN-is-not-set"),
            "serve",
            "app.wsgi:app",
            "--production",
            "--port",
            str(port),
        ],
    ),
    "gunicorn": Contender(
        "gunicorn",
        "`gunicorn --reload -w 1 app.wsgi:app`",
        lambda port: [
            str(VENV_BIN / "gunicorn"),
            "--reload",
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "app.wsgi:app",
        ],
    ),
}
PEERS = ("werkzeug-stat", "werkzeug-watchdog", "flask-run", "hupper", "hupper-fast", "gunicorn")
QUICK_PEERS = ("werkzeug-stat", "werkzeug-watchdog", "hupper", "hupper-fast", "gunicorn")


#: What the peers' own code does, read from the installed versions; it explains the table.
PEER_NOTES = (
    "How the peers reload (read from their code, versions under Machine):",
    "",
    "- werkzeug `stat`: scans the files every second (`reloader_interval=1`), then the parent "
    "starts a new serving child; the parent keeps the listening socket "
    "(`WERKZEUG_SERVER_FD`), so requests wait in the backlog instead of being refused.",
    "- werkzeug `watchdog`: schedules recursive watches on every `sys.path` folder (the standard "
    "library, site-packages, the app); on this machine watchdog's inotify queue overflows and no "
    "edit is ever seen (log lines below).",
    '- `flask run --reload`: werkzeug\'s reloader with `reloader_type="auto"`, which is the '
    "watchdog one whenever watchdog is installed (it is a hotmod dependency): same as above.",
    "- hupper: after a worker exits it waits out `reload_interval` (1 s by default; the CLI takes "
    "whole seconds of at least 1) before starting the next one, and the new worker binds the "
    "port again: requests in between are refused. `hupper-fast` is the same with "
    "`reload_interval=0.1`, set through hupper's API.",
    "- gunicorn `--reload`: without the `inotify` package it polls the files every second; the "
    "arbiter keeps the socket while the worker restarts, so requests wait rather than fail.",
    "- hotmod: one process throughout; the watcher cuts a save's burst after a short quiet "
    "window, the plan re-executes the view and its importers (`app`, `app.wsgi`: the app "
    "factory runs again), and the next request uses the new generation. Where its "
    "milliseconds go: the Soak and Breakdown sections.",
)


@dataclass(frozen=True)
class Settings:
    edits: int  # per contender and pairing
    per_round: int
    edit_timeout: float  # seconds to wait for one edit to be served
    misses_allowed: int  # consecutive misses before a contender counts as not reloading
    warmup: float  # seconds between "ready" and the first edit
    after: float  # seconds of probing after the new text appeared
    peers: tuple[str, ...]


SETTINGS = {
    # hupper's worker reports the modules it imported to its monitor once a second:
    # an edit within that second of start-up is never seen, so warm up for 1.5 s.
    "full": Settings(30, 10, 8.0, 3, 1.5, 0.3, PEERS),
    "quick": Settings(4, 2, 4.0, 3, 1.5, 0.2, QUICK_PEERS),
    "smoke": Settings(1, 1, 5.0, 1, 0.5, 0.1, ("werkzeug-stat",)),
}


@dataclass
class Tally:
    """Everything measured for one contender in one pairing."""

    name: str
    records: list[dict[str, Any]]
    reloading: bool = True
    consecutive_misses: int = 0
    note: str = ""
    log_tail: str = ""
    #: Durations of idle probes of the same server (hotmod only): the HTTP floor.
    probe_ms: list[float] = field(default_factory=list)


def run_batch(
    contender: Contender,
    copy: AppCopy,
    tally: Tally,
    *,
    settings: Settings,
    edits: int,
    dsn: str,
    round_no: int,
) -> None:
    """Start ``contender`` on ``copy``, make ``edits`` edits, stop it."""
    port = free_port()
    app_name = f"hotmod-bench-{contender.name}-{copy.root.name}"
    server = Server(
        name=contender.name,
        argv=contender.argv(port),
        cwd=copy.root,
        env=copy.env(database_url=dsn, application_name=app_name),
        port=port,
        log_path=copy.root.parent / f"{copy.root.name}.log",
    )
    try:
        server.start()
        ready_s = server.wait_ready()
        time.sleep(settings.warmup)  # a user does not save within a second of starting
        if contender.name == HOTMOD:
            tally.probe_ms.extend(probe_floor(port))
        for index in range(edits):
            atomic = copy.edits % 2 == 0
            opens_before = copy.db_opens()
            pid_before = leaf_pid(server.pid)
            needle = copy.edit(atomic=atomic)
            since = time.perf_counter()
            result = poll_until(port, needle, since=since, timeout=settings.edit_timeout)
            after = probe_window(port, needle, seconds=settings.after) if result.seen else {}
            record = {
                "server": contender.name,
                "round": round_no,
                "edit": copy.edits,
                "how": "rename" if atomic else "in-place",
                "first": index == 0,  # the server's first edit since it started
                "seen": result.seen,
                "latency_s": result.latency_s if result.seen else None,
                "probes": result.probes,
                "errors": result.errors,
                "after": after,
                "failed": result.failed + sum(v for k, v in after.items() if k != "stale"),
                "stale_after": after.get("stale", 0),
                "db_opens": copy.db_opens() - opens_before,
                "pg_backends": pg_backends(dsn, app_name),
                "restarted": leaf_pid(server.pid) != pid_before,
                "ready_s": ready_s,
            }
            tally.records.append(record)
            shown = f"{result.latency_s * 1000:.1f} ms" if result.seen else "MISSED"
            log(
                f"  {contender.name:18} round {round_no} edit {copy.edits:3} ({record['how']:8})"
                f" {shown:>10}  failed={record['failed']} db_opens={record['db_opens']}"
            )
            if result.seen:
                tally.consecutive_misses = 0
            else:
                tally.consecutive_misses += 1
                if tally.consecutive_misses >= settings.misses_allowed:
                    tally.reloading = False
                    tally.note = (
                        f"not reloading: missed {tally.consecutive_misses} edits in a row"
                        f" (waited {settings.edit_timeout:.0f} s each)"
                    )
                    tally.log_tail = server.log_tail()
                    return
    except RuntimeError as exc:
        tally.reloading = False
        tally.note = f"failed to serve: {str(exc).splitlines()[0]}"
        tally.log_tail = server.log_tail()
    finally:
        server.stop()
        tally.log_tail = tally.log_tail or server.log_tail(3)


def probe_floor(port: int, count: int = 50) -> list[float]:
    """Durations (ms) of ``count`` probes of ``/`` on an idle server, one at a time, as
    the edit loop sends them: what one answer costs client and server when nothing
    is reloading (the floor under the polling part of every latency)."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        status, _, _ = http_get(port, "/", timeout=2.0)
        if status == 200:
            out.append((time.perf_counter() - started) * 1000)
    return out


def summarize(tally: Tally) -> dict[str, Any]:
    seen = [r for r in tally.records if r["seen"]]
    latencies = [r["latency_s"] for r in seen]
    row: dict[str, Any] = {
        "server": tally.name,
        "edits": len(tally.records),
        "served": len(seen),
        "missed": len(tally.records) - len(seen),
        **summary_ms(latencies),
        "failed_requests": sum(r["failed"] for r in tally.records),
        "reloads_with_failures": sum(1 for r in tally.records if r["failed"]),
        "stale_after": sum(r["stale_after"] for r in tally.records),
        "pg_backends_max": max(
            (r["pg_backends"] for r in tally.records if r["pg_backends"] is not None), default=None
        ),
        "db_opens_per_reload": (round(statistics.mean(r["db_opens"] for r in seen), 2) if seen else None),
        "restarted_process": sum(1 for r in seen if r["restarted"]),
        "status": "reloads" if tally.reloading else tally.note,
        "log_tail": tally.log_tail if not tally.reloading else "",
    }
    for how in ("rename", "in-place"):
        subset = [r["latency_s"] for r in seen if r["how"] == how]
        row[f"median_ms_{how}"] = summary_ms(subset)["median_ms"]
    # A server's first edit pays for a file never saved alone before (the watcher
    # cannot tell it from the first file of a burst) and for cold caches.
    row["median_ms_first"] = summary_ms([r["latency_s"] for r in seen if r.get("first")])["median_ms"]
    row["median_ms_later"] = summary_ms([r["latency_s"] for r in seen if not r.get("first")])["median_ms"]
    row["probe_median_ms"] = (
        round(statistics.median(tally.probe_ms), 2) if tally.probe_ms else None
    )
    kinds: dict[str, int] = {}
    for r in tally.records:
        for source in (r["errors"], r["after"]):
            for kind, n in source.items():
                if kind != "stale":
                    kinds[kind] = kinds.get(kind, 0) + n
    row["failure_kinds"] = kinds
    return row


def run(
    mode: str = "full",
    *,
    peers: Sequence[str] | None = None,
    dsn: str | None = None,
) -> dict[str, Any]:
    settings = SETTINGS[mode]
    chosen = tuple(peers) if peers else settings.peers
    dsn = postgres_dsn() if dsn is None else dsn
    have_hotmod = hotmod_cli() is not None
    if not have_hotmod:
        log("`hotmod serve` is not available yet: measuring the peers alone")
    pairings: list[dict[str, Any]] = []
    all_hotmod: list[dict[str, Any]] = []
    all_probes: list[float] = []
    with scratch_dir("save-to-serve") as scratch:
        for peer_name in chosen:
            peer = CONTENDERS[peer_name]
            log(f"save-to-serve: {HOTMOD} vs {peer_name}, {settings.edits} edits each")
            ours = Tally(HOTMOD, [])
            theirs = Tally(peer_name, [])
            our_copy = AppCopy.create(scratch, f"{peer_name}-hotmod")
            their_copy = AppCopy.create(scratch, f"{peer_name}-peer")
            rounds = -(-settings.edits // settings.per_round)
            for round_no in range(1, rounds + 1):
                if not theirs.reloading:
                    break  # nothing left to compare hotmod with in this pairing
                batch = min(settings.per_round, settings.edits - (round_no - 1) * settings.per_round)
                if have_hotmod and ours.reloading:
                    run_batch(
                        CONTENDERS[HOTMOD],
                        our_copy,
                        ours,
                        settings=settings,
                        edits=batch,
                        dsn=dsn,
                        round_no=round_no,
                    )
                if theirs.reloading:
                    run_batch(
                        peer,
                        their_copy,
                        theirs,
                        settings=settings,
                        edits=batch,
                        dsn=dsn,
                        round_no=round_no,
                    )
            pairing: dict[str, Any] = {
                "peer": summarize(theirs),
                "records": theirs.records + ours.records,
            }
            if have_hotmod:
                pairing["hotmod"] = summarize(ours)
                all_hotmod.extend(ours.records)
                all_probes.extend(ours.probe_ms)
                ours_median = pairing["hotmod"]["median_ms"]
                theirs_median = pairing["peer"]["median_ms"]
                pairing["ratio"] = (
                    round(theirs_median / ours_median, 1)
                    if ours_median and theirs_median and theirs.reloading
                    else None
                )
            pairings.append(pairing)
    result: dict[str, Any] = {
        "mode": mode,
        "settings": settings.__dict__,
        "database": "postgresql" if dsn else "sqlite",
        "hotmod_available": have_hotmod,
        "pairings": pairings,
    }
    if have_hotmod:
        result["hotmod"] = summarize(Tally(HOTMOD, all_hotmod, probe_ms=all_probes))
        result["own_share"] = own_share(result["hotmod"], mode, dsn)
    return result


def own_share(hotmod: dict[str, Any], mode: str, dsn: str) -> dict[str, Any]:
    """hotmod's own share of save-to-serve: the median minus what the app itself costs
    for the same plan, measured in-process in this run (bench.breakdown: executing
    the plan's modules with the factory, and the first request on the new generation).
    Also for the edits after a server's first, and the HTTP probe's own floor."""
    median_ms = hotmod["median_ms"]
    from bench import breakdown

    log("save-to-serve: the app's own cost of the same edit, in-process")
    inproc = breakdown.run(mode, dsn=dsn)
    app_exec = inproc["app_exec"]["median_ms"]
    first = inproc["first_request"]["median_ms"]
    share = later = None
    if median_ms is not None and app_exec is not None and first is not None:
        share = round(median_ms - app_exec - first, 2)
        if hotmod.get("median_ms_later") is not None:
            later = round(hotmod["median_ms_later"] - app_exec - first, 2)
    return {
        "save_to_serve_median_ms": median_ms,
        "app_exec_median_ms": app_exec,
        "first_request_median_ms": first,
        "reload_median_ms": inproc["reload"]["median_ms"],
        "engine_own_median_ms": inproc["engine_own"]["median_ms"],
        "own_share_ms": share,
        "later_median_ms": hotmod.get("median_ms_later"),
        "own_share_later_ms": later,
        "probe_median_ms": hotmod.get("probe_median_ms"),
        "rounds": inproc["rounds"],
    }


def render(result: dict[str, Any]) -> str:
    """The Markdown section for RESULTS.md."""
    s = result["settings"]
    lines = [
        "## Save-to-serve latency",
        "",
        f"Flask bench app (`bench/apps/flaskapp`, {result['database']} pool), one edit of "
        f"`app/views/pages.py` at a time, alternating atomic rename and in-place write; "
        f"`GET /` over a fresh connection every 1 ms until the new text is served. "
        f"{s['edits']} edits per server per pairing, in rounds of {s['per_round']} "
        f"(hotmod, peer, hotmod, peer, ...). A server that misses {s['misses_allowed']} "
        f"edits in a row ({s['edit_timeout']:.0f} s each) is recorded as not reloading.",
        "",
        "Latency runs from the edit landing to the end of the body of the first response that "
        "shows it (Content-Length; werkzeug's dev server keeps each socket ~10 ms longer). Failed "
        "requests: refused or reset connections, `empty` (closed without an answer), `timeout` "
        "(no answer in 2 s) and 5xx, counted from the edit until "
        f"{s['after'] * 1000:.0f} ms after the new text appeared. Db opens: connections the app "
        "opened (its own counter, across restarts); PG backends: `pg_stat_activity` rows with the "
        "server's own `application_name`. Every server runs with `PYTHONDONTWRITEBYTECODE=1` "
        "(a stale `.pyc` of an earlier edit of the same size in the same second would otherwise "
        f"be imported) and gets its first edit {s['warmup']:.1f} s after it answers (hupper's "
        "worker reports its imported files to the monitor once a second).",
        "",
        "| server | served/edits | median ms | p95 ms | max ms | median rename / in-place ms "
        "| failed requests (reloads hit) | db opens / reload (max PG backends) | peer/hotmod (median) "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(r: dict[str, Any], ratio: str) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["failure_kinds"].items()))
        failed = f"{r['failed_requests']} ({r['reloads_with_failures']})"
        if kinds:
            failed += f": {kinds}"
        return (
            f"| {r['server']} | {r['served']}/{r['edits']} | {fmt(r['median_ms'])} "
            f"| {fmt(r['p95_ms'])} | {fmt(r['max_ms'])} "
            f"| {fmt(r['median_ms_rename'])} / {fmt(r['median_ms_in-place'])} | {failed} "
            f"| {fmt(r['db_opens_per_reload'], 2)} ({fmt(r.get('pg_backends_max'))}) | {ratio} "
            f"| {r['status']} |"
        )

    if result["hotmod_available"]:
        lines.append(row(result["hotmod"], "1.0"))
        share = result.get("own_share")
        if share is not None:
            lines.append(
                f"| hotmod's own share (median minus the app's cost, below) | - "
                f"| {fmt(share['own_share_ms'])} | - | - | - | - | - | - | goal: at most 2 ms |"
            )
    else:
        lines.append(
            "| hotmod | - | - | - | - | - | - | - | - | pending: `hotmod serve` "
            "not built yet (middleware issue) |"
        )
    for pairing in result["pairings"]:
        ratio = pairing.get("ratio")
        lines.append(row(pairing["peer"], f"{ratio}x" if ratio else "-"))
    share = result.get("own_share") if result["hotmod_available"] else None
    if share is not None:
        lines += [
            "",
            f"hotmod's own share: the save-to-serve median above minus what the app itself costs "
            f"for the same edit, measured in-process in this run ({share['rounds']} reloads of "
            f"the same view through `Reloader.reload()`, then the first request through "
            f"werkzeug's test client, as in the Breakdown section):",
            "",
            "| part | median ms |",
            "|---|---|",
            f"| save-to-serve, hotmod | {fmt(share['save_to_serve_median_ms'])} |",
            f"| the app: executing the plan's modules and the factory (`exec_ms`) "
            f"| {fmt(share['app_exec_median_ms'])} |",
            f"| the app: first request on the new generation | {fmt(share['first_request_median_ms'])} |",
            f"| **hotmod's own share** (watcher, plan, engine, server, client) "
            f"| **{fmt(share['own_share_ms'])}** |",
            f"| of which the engine's own work inside `reload()` | {fmt(share['engine_own_median_ms'])} |",
            f"| of which one probe's own cost (a fresh-connection `GET /` of the idle server, "
            f"client and server: the polling floor) | {fmt(share.get('probe_median_ms'))} |",
            f"| save-to-serve, hotmod, edits after each server's first "
            f"| {fmt(share.get('later_median_ms'))} |",
            f"| hotmod's own share of those | {fmt(share.get('own_share_later_ms'))} |",
        ]
    lines += ["", *PEER_NOTES]
    tails = [p["peer"] for p in result["pairings"] if p["peer"]["log_tail"]]
    if tails:
        lines += ["", "Last log lines of servers that did not reload:", ""]
        for r in tails:
            lines += [f"- **{r['server']}**:", "", "```", r["log_tail"], "```", ""]
    if result["hotmod_available"] and len(result["pairings"]) > 1:
        lines += [
            "",
            "hotmod in each pairing (same rounds as the peer):",
            "",
            "| pairing | served/edits | median ms | p95 ms | max ms | failed |",
            "|---|---|---|---|---|---|",
        ]
        for p in result["pairings"]:
            h = p["hotmod"]
            lines.append(
                f"| vs {p['peer']['server']} | {h['served']}/{h['edits']} | {fmt(h['median_ms'])}"
                f" | {fmt(h['p95_ms'])} | {fmt(h['max_ms'])} | {h['failed_requests']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser("python -m bench.save_to_serve")
    # repeatable; hotmod-baseline: another hotmod install, named by HOTMOD_BASELINE_BIN
    parser.add_argument("--peer", action="append", choices=(*PEERS, BASELINE))
    args = parser.parse_args(argv)
    baseline = os.environ.get("HOTMOD_BASELINE_BIN", "")
    if BASELINE in (args.peer or ()) and not os.access(baseline, os.X_OK):
        parser.error("--peer hotmod-baseline needs HOTMOD_BASELINE_BIN, the `hotmod` of another install")
    mode = mode_of(args)
    result = run(mode, peers=args.peer)
    emit(result, render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
