"""The benchmark suite's smoke mode runs end to end and writes sane rows.

Numbers are not judged here (timing belongs to the bench itself); what is checked
is that every section either ran and measured something real, or says why it is
pending, and that the Markdown names the machine and the commands.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Seconds the whole smoke run may take: about 60 on an idle machine (the browser
#: section included), up to twice that beside the rest of the suite on two cores.
SMOKE_BOUND = 170
# The module's fixture runs the smoke, within the first test's own time bound.
pytestmark = pytest.mark.timeout(SMOKE_BOUND + 60)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-smoke")
    results, store = out / "RESULTS.md", out / "sections"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(results), "--store", str(store)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=SMOKE_BOUND)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the suite then stops the servers it started (their own groups).
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        pytest.fail(f"the smoke run took more than {SMOKE_BOUND} s")
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    sections = {p.stem: json.loads(p.read_text()) for p in store.glob("*.json")}
    chart = out / "save_to_serve.svg"
    return {
        "proc": completed,
        "markdown": results.read_text() if results.exists() else "",
        "sections": sections,
        "chart": chart.read_text() if chart.exists() else "",
    }


def _ran(smoke: dict[str, Any], name: str) -> dict[str, Any]:
    entry = smoke["sections"][name]
    assert entry["result"] is not None, entry.get("error") or entry.get("pending")
    result: dict[str, Any] = entry["result"]
    return result


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_smoke_run_exits_cleanly_and_writes_every_section(smoke: dict[str, Any]) -> None:
    proc = smoke["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(smoke["sections"]) == {
        "save_to_serve",
        "breakdown",
        "overhead",
        "loop_lag",
        "scale",
        "soak",
        "frameworks",
        "asgi_save_to_serve",
        "live_reload",
    }
    for entry in smoke["sections"].values():
        assert entry["mode"] == "smoke"
        assert entry["result"] is not None or entry.get("pending"), entry.get("error")


def test_results_markdown_names_the_machine_commands_and_sections(smoke: dict[str, Any]) -> None:
    text = smoke["markdown"]
    assert f"{os.cpu_count()} CPUs" in text
    assert f"Python {sys.version.split()[0]}" in text
    assert "werkzeug " in text and "hupper " in text
    assert "`.venv/bin/python -m bench --smoke`" in text
    for title in (
        "## Save-to-serve latency",
        "## Breakdown",
        "## Request overhead",
        "## Event-loop lag during reloads (ASGI)",
        "## Scale",
        "## Soak",
        "## Save-to-serve per framework",
        "## Save-to-serve on ASGI (FastAPI)",
        "## Save → page shows the edit (live reload, headless Chromium)",
    ):
        assert title in text


def test_restart_peer_reloads_and_reopens_its_database_connections(smoke: dict[str, Any]) -> None:
    result = _ran(smoke, "save_to_serve")
    peer = result["pairings"][0]["peer"]
    assert peer["server"] == "werkzeug-stat"
    assert peer["status"] == "reloads", peer
    assert peer["served"] == peer["edits"] == 1
    assert _positive(peer["median_ms"])
    # a new process opens its pool afresh: the app-side counter must have seen it
    assert peer["db_opens_per_reload"] >= 1
    assert peer["restarted_process"] == 1


def test_hotmod_row_reloads_in_the_same_process(smoke: dict[str, Any]) -> None:
    result = _ran(smoke, "save_to_serve")
    assert result["hotmod_available"], "`hotmod serve` is missing: run `make install`"
    ours = result["hotmod"]
    assert ours["served"] == ours["edits"] == 1, ours
    assert _positive(ours["median_ms"])
    assert ours["restarted_process"] == 0
    assert result["pairings"][0]["ratio"] is not None


def test_breakdown_times_a_reload_and_its_first_request(smoke: dict[str, Any]) -> None:
    result = _ran(smoke, "breakdown")
    assert result["reload"]["n"] == result["first_request"]["n"] == 3
    assert _positive(result["reload"]["median_ms"])
    assert _positive(result["first_request"]["median_ms"])
    assert "app.views.pages" in result["modules"]
    assert "cumtime" in result["profile"]


def test_scale_row_measures_leaf_and_deep_edits(smoke: dict[str, Any]) -> None:
    result = _ran(smoke, "scale")
    (row,) = result["rows"]
    assert row["modules"] == 100
    assert row["modules_loaded"] >= 100
    assert _positive(row["leaf"]["latency"]["median_ms"])
    assert row["deep"]["modules_reloaded"] > row["deep_importers"]
    assert row["leaf"]["misses"] == row["deep"]["misses"] == 0


def test_soak_samples_the_server_at_start_and_end(smoke: dict[str, Any]) -> None:
    result = _ran(smoke, "soak")
    samples = result["samples"]
    assert [s["reloads"] for s in samples] == [0, 5, 10]
    assert samples[-1]["generation"] == samples[0]["generation"] + 10
    assert all(s["rss_kib"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in samples)
    assert result["misses"] == 0
    asgi = result["asgi"]  # the same soak on the ASGI path (uvicorn, an async pool)
    assert [s["reloads"] for s in asgi["samples"]] == [0, 5, 10]
    assert asgi["misses"] == 0


def test_overhead_measures_the_asgi_path_too(smoke: dict[str, Any]) -> None:
    overhead = _ran(smoke, "overhead")
    assert overhead["asgi_in_process"]["raw"]["production"]["wrapped_ns"] > 0


def test_frameworks_row_reloads_pyramid_in_process_and_its_own_reloader_by_restarting(
    smoke: dict[str, Any],
) -> None:
    result = _ran(smoke, "frameworks")
    (row,) = result["rows"]
    assert row["framework"] == "pyramid"
    ours, theirs = row["hotmod"], row["peer"]
    assert ours["served"] == ours["edits"] == 1 and ours["restarted_process"] == 0, ours
    assert theirs["served"] == theirs["edits"] == 1 and theirs["restarted_process"] == 1, theirs
    assert _positive(ours["median_ms"]) and _positive(theirs["median_ms"])


def test_asgi_row_reloads_in_process_and_keeps_open_connections_on_the_old_code(
    smoke: dict[str, Any],
) -> None:
    result = _ran(smoke, "asgi_save_to_serve")
    (pairing,) = result["pairings"]
    ours, theirs = pairing["hotmod"], pairing["peer"]
    assert ours["served"] == ours["edits"] == 1 and ours["restarted_process"] == 0, ours
    assert ours["failed_requests"] == 0, ours["failure_kinds"]
    # in one process the loop-lag probe reads across the reload
    assert ours["loop_lag_readings"] == 1
    sse, ws = ours["sse"], ours["ws"]
    assert sse["ended"] and sse["after_edit_new"] == 0 and sse["shown_while_open"], sse
    assert ws["open_at_end"] and ws["after_edit_old"] > 0 and ws["after_edit_new"] == 0, ws
    assert theirs["server"] == "uvicorn" and theirs["status"] == "reloads", theirs
    assert theirs["served"] == 1 and theirs["restarted_process"] == 1, theirs
    assert theirs["reloader"] in ("WatchFiles", "StatReload")
    assert theirs["sse"]["events"] > 0 and theirs["ws"]["outcome"]
    assert _positive(ours["median_ms"]) and _positive(theirs["median_ms"])


def test_live_reload_row_shows_each_edit_in_the_open_page_by_itself(smoke: dict[str, Any]) -> None:
    entry = smoke["sections"]["live_reload"]
    if entry["result"] is None and "no headless browser" in (entry.get("pending") or ""):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have a browser: {entry['pending']}")
        pytest.skip(entry["pending"])
    result = _ran(smoke, "live_reload")
    rows = {(r["server"], r["kind"]): r for r in result["rows"]}
    for kind in ("view", "template"):
        row = rows["hotmod", kind]
        assert row["shown"] == row["edits"] == 1, row
        assert _positive(row["median_ms"]) and row["full_reloads"] == 0, row
    injection = result["injection"]
    assert injection["injected"] and injection["content_length_corrected"], injection
    tabs = result["tabs"]
    assert tabs["followed"] == tabs["tabs"] == 7, tabs
    assert tabs["all_tabs"]["held_polls"] == 1, tabs
    soak = result["soak"]
    assert soak["misses"] == 0 and soak["reloads"] == 10, soak
    assert soak["growth"]["page_updates"] == 10, soak["growth"]


def test_chart_of_both_save_to_serve_sections_is_written_beside_the_results(smoke: dict[str, Any]) -> None:
    svg = smoke["chart"]
    assert svg.startswith("<?xml") and "<svg" in svg
    assert "](save_to_serve.svg)" in smoke["markdown"]


def test_hotmod_itself_never_imports_matplotlib() -> None:
    code = (
        "import sys, hotmod, hotmod.middleware, hotmod.middleware.cli; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


# --- the harness's own pieces, without servers of the peers -----------------------------------


def test_percentile_is_nearest_rank_and_refuses_an_empty_sequence() -> None:
    from bench._harness import percentile, summary_ms

    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    assert summary_ms([]) == {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    assert summary_ms([0.001, 0.003]) == {"n": 2, "median_ms": 2.0, "p95_ms": 3.0, "max_ms": 3.0}


def test_probe_ends_at_content_length_while_the_server_keeps_the_socket(port: int) -> None:
    """werkzeug's dev server holds a connection after the body; a browser does not wait."""
    import socket
    import threading

    from bench._harness import http_get

    release = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                release.wait(10)  # keep the socket open until the client is done

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        # Had the probe read until EOF it would have timed out: the server only closes
        # after the probe returned.
        status, body, error = http_get(port, "/", timeout=5.0)
        release.set()
        server.join(timeout=10)
    assert (status, body, error) == (200, b"hello", "")


def test_probe_names_a_refused_connection(port: int) -> None:
    from bench._harness import http_get

    assert http_get(port, "/", timeout=1.0) == (None, b"", "refused")


def test_app_copy_edits_only_its_copy_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    from bench._harness import FLASK_APP, AppCopy

    original = (FLASK_APP / "app" / "views" / "pages.py").read_text()
    copy = AppCopy.create(tmp_path, "copy")
    first = copy.edit(atomic=True)
    second = copy.edit(atomic=False)
    assert first != second
    text = copy.view.read_text()
    assert second.decode() in text and first.decode() not in text
    assert text.replace(second.decode(), "bench-edit-00000") == original
    assert sorted(p.name for p in copy.view.parent.iterdir() if p.name.startswith(".")) == []
    assert (FLASK_APP / "app" / "views" / "pages.py").read_text() == original


def test_chart_reads_the_wsgi_rows_back_from_results_markdown(tmp_path: Path) -> None:
    from bench.chart import bars_of, wsgi_entry_from_markdown

    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# hotmod benchmark results\n\n## Save-to-serve latency\n\n"
        "_Mode full, run 2026-11-30 08:11 UTC (600 s): `x`._\n\n"
        "| server | served/edits | median ms | p95 ms | status |\n|---|---|---|---|---|\n"
        "| hotmod | 140/140 | 11.9 | 25.4 | reloads |\n"
        "| hotmod's own share (median minus the app's cost, below) | - | 5.9 | - | goal |\n"
        "| werkzeug-stat | 30/30 | 935.3 | 956.0 | reloads |\n"
        "| flask-run | 0/3 | - | - | not reloading: missed 3 edits in a row |\n"
        "\nafter the table\n## Breakdown\n"
    )
    entry = wsgi_entry_from_markdown(results)
    assert entry is not None and entry["mode"] == "full"
    bars = {b.label: b for b in bars_of(entry)}
    assert set(bars) == {"hotmod", "werkzeug-stat", "flask-run"}
    assert bars["hotmod"].ours and bars["hotmod"].median_ms == 11.9
    assert bars["werkzeug-stat"].median_ms == 935.3
    assert bars["flask-run"].median_ms is None and bars["flask-run"].note == "not reloading"


def test_live_reload_site_edits_view_and_template_of_its_copy_only(tmp_path: Path) -> None:
    from bench._harness import FLASK_APP
    from bench.live_reload import flask_site

    template = FLASK_APP / "app" / "templates" / "index.html"
    before = template.read_text()
    site = flask_site(tmp_path, "copy", "")
    assert site.next_needle("template") == "bench-template-00001"
    assert site.edit("template") == "rename"
    assert "items in stock. bench-template-00001" in (site.root / "app/templates/index.html").read_text()
    assert site.edit("view") == "rename" and site.edit("view") == "in-place"
    view = (site.root / "app" / "views" / "pages.py").read_text()
    assert 'MARKER = "bench-view-00003"' in view and "bench-view-00002" not in view
    assert template.read_text() == before
    assert not list(site.root.rglob(".*.tmp"))
