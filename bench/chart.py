"""The save-to-serve chart: median per server, WSGI and ASGI side by side, log scale.

``python -m bench`` draws it after the sections ran (and ``--render`` redraws it)
from the stored results of the ``save_to_serve`` and ``asgi_save_to_serve``
sections, as ``save_to_serve.svg`` beside the Markdown it writes (so
``bench/save_to_serve.svg`` for ``bench/RESULTS.md``). matplotlib is a dependency
of the bench only (the ``dev`` extra); hotmod never imports this module.

Run alone: ``python -m bench.chart [--store DIR] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import BENCH_DIR, log

HOTMOD_COLOUR = "#d1495b"
PEER_COLOUR = "#8d99ae"


@dataclass(frozen=True)
class Bar:
    label: str
    median_ms: float | None  # None: the server did not reload (said on the bar's line)
    note: str
    ours: bool


def bars_of(entry: dict[str, Any] | None) -> list[Bar]:
    """One bar per server of a stored save-to-serve result (WSGI or ASGI: same shape)."""
    result = (entry or {}).get("result")
    if not result:
        return []
    bars = []
    ours = result.get("hotmod")
    if ours:
        bars.append(_bar("hotmod", ours, ours=True))
    for pairing in result.get("pairings", []):
        peer = pairing["peer"]
        name = peer["server"] + (f" ({peer['reloader']})" if peer.get("reloader") else "")
        bars.append(_bar(name, peer, ours=False))
    for name, why in result.get("skipped", {}).items():
        bars.append(Bar(name, None, why.split(":")[0], ours=False))
    return bars


def wsgi_entry_from_markdown(path: Path) -> dict[str, Any] | None:
    """The WSGI section's rows read back from a RESULTS.md, for a store that has no
    ``save_to_serve.json`` (the stored JSON is not committed; RESULTS.md is)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    _, found, rest = text.partition("\n## Save-to-serve latency\n")
    if not found:
        return None
    header = re.search(r"_Mode (\w+), run ([^(]+?) \(", rest)
    rows: list[dict[str, Any]] = []
    in_table = False
    for line in rest.splitlines():
        if line.startswith("| server |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not in_table or cells[0].startswith("---") or "own share" in cells[0]:
            continue
        median = None if cells[2] == "-" else float(cells[2])
        rows.append({"server": cells[0], "median_ms": median, "status": cells[-1]})
    if not rows:
        return None
    ours = next((r for r in rows if r["server"] == "hotmod"), None)
    return {
        "mode": header.group(1) if header else "?",
        "date_utc": f"{header.group(2).strip()}, from {path.name}" if header else path.name,
        "result": {"hotmod": ours, "pairings": [{"peer": r} for r in rows if r is not ours]},
    }


def _bar(label: str, row: dict[str, Any], *, ours: bool) -> Bar:
    median = row.get("median_ms")
    if row.get("status") != "reloads" or median is None:
        return Bar(label, None, str(row.get("status", "not measured")).split(":")[0], ours)
    return Bar(label, float(median), "", ours)


def write(sections: dict[str, dict[str, Any]], path: Path) -> bool:
    """Draw the chart from stored sections into ``path`` (SVG); False if there is nothing
    to draw or no matplotlib. Without a stored WSGI result, its rows come from
    ``bench/RESULTS.md``."""
    if "save_to_serve" not in sections:
        sections = dict(sections)
        wsgi = wsgi_entry_from_markdown(BENCH_DIR / "RESULTS.md")
        if wsgi is not None:
            sections["save_to_serve"] = wsgi
    panels = [
        (title, bars_of(sections.get(name)), sections.get(name))
        for title, name in (("WSGI: Flask app", "save_to_serve"), ("ASGI: FastAPI app", "asgi_save_to_serve"))
    ]
    panels = [p for p in panels if p[1]]
    if not panels:
        log("chart: no stored save-to-serve result to draw")
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("chart: matplotlib is not installed (the dev extra has it); no chart drawn")
        return False
    matplotlib.rcParams["svg.hashsalt"] = "hotmod-bench"  # the same ids from the same numbers
    values = [b.median_ms for _, bars, _ in panels for b in bars if b.median_ms is not None]
    low = min(values, default=1.0) / 3
    high = max(values, default=1000.0) * 8
    rows = max(len(bars) for _, bars, _ in panels)
    figure, axes = plt.subplots(
        1, len(panels), figsize=(6.2 * len(panels), 0.55 * rows + 1.6), squeeze=False, sharex=True
    )
    for axis, (title, bars, entry) in zip(axes[0], panels, strict=True):
        ordered = sorted(bars, key=lambda b: (b.median_ms is None, b.median_ms or 0.0))
        positions = [rows - 1 - i for i in range(len(ordered))]  # top-aligned across panels
        for y, bar in zip(positions, ordered, strict=True):
            if bar.median_ms is None:
                axis.text(low * 1.1, y, f"not measured: {bar.note}", va="center", fontsize=8, color="#555555")
                continue
            axis.barh(y, bar.median_ms, color=HOTMOD_COLOUR if bar.ours else PEER_COLOUR, height=0.6)
            axis.text(bar.median_ms * 1.08, y, _ms(bar.median_ms), va="center", fontsize=9)
        axis.set_yticks(positions, [b.label for b in ordered], fontsize=9)
        for tick, bar in zip(axis.get_yticklabels(), ordered, strict=True):
            if bar.ours:
                tick.set_fontweight("bold")
        axis.set_xscale("log")
        axis.set_xlim(low, high)
        axis.set_ylim(-0.7, rows - 0.3)
        axis.set_xlabel("edit saved → new text served, median (ms, log scale)")
        mode = (entry or {}).get("mode", "?")
        axis.set_title(f"{title} ({mode}, {(entry or {}).get('date_utc', '')})", fontsize=10)
        axis.grid(axis="x", which="major", alpha=0.3)
        axis.spines[["top", "right"]].set_visible(False)
    figure.suptitle("Save to serve per server: edit saved to new text served (lower is better)", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
    log(f"chart: wrote {path}")
    return True


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chart", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=BENCH_DIR / "out" / "sections")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "save_to_serve.svg")
    args = parser.parse_args(argv)
    sections = {p.stem: json.loads(p.read_text()) for p in args.store.glob("*.json")}
    return 0 if write(sections, args.output) else 1


if __name__ == "__main__":
    raise SystemExit(main())
