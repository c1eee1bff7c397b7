"""The realistic regime's output: terminal tables, raw JSON, and its block in docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.report import DOCS, markdown_table, text_table

BEGIN, END = "<!-- bench:realistic:begin -->", "<!-- bench:realistic:end -->"
LABELS = {
    "cspgraph": "cspgraph sync (SQLite, defaults)",
    "raw": "raw client (aiohttp, no connection limit)",
    "sample": "docs sample (MSAL + requests, sequential)",
    "sdk": "msgraph-sdk (as its docs show it)",
}
WALL_TARGET = 1.25
THROTTLED_TARGET = 0.02
RSS_TARGET_MB = 300.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def one_line(size: int, r: dict[str, Any]) -> str:
    b = r["bound"]
    return (
        f"[{size}] {r['row']}: wall {r['wall_s']:.1f} s, bound {b['seconds']:.1f} s ({b['by']}), "
        f"{r['requests_graph']} requests, {r['throttled_429']} 429s, peak in flight "
        f"{r['in_flight_peak']}, CPU {r['cpu_s']:.1f} s, RSS {r['peak_rss_mb']:.0f} MB, load "
        f"{r['load_before'][0]:.1f}, {'complete' if r['ok'] else r['problems']}; longest chain "
        f"{r.get('chain_gaps')}"
    )


def rows(fleet: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "client", "wall s", "lower bound s", "wall ÷ bound", "bound set by", "Graph requests",
        "429s", "peak in flight", "client CPU s", "peak RSS MB", "complete", "load (1 min)",
    ]  # fmt: skip
    out = []
    for r in fleet["runs"]:
        label = LABELS.get(r["runner"] if "row" not in r else r["row"], r.get("runner", "?"))
        if not r.get("bound"):
            out.append([label] + ["-"] * 9 + ["NO: " + "; ".join(r.get("problems", []))[:120], "-"])
            continue
        b = r["bound"]
        wall = r["wall_s"]
        ratio = f"{wall / b['seconds']:.2f}×" if b["seconds"] else "-"
        wall_text = _num(wall)
        requests, cpu = r["requests_graph"], r["cpu_s"]
        if r.get("sampled"):
            s = r["scaled"]
            label += f" — {r['customers']}-customer sample"
            wall_text = f"{_num(s['wall_s'])} scaled (sample {_num(wall)})"
            ratio += " (sample)"
            requests = f"{s['requests_graph']:,} scaled"
            cpu = s["cpu_s"]
        share = r["throttled_429"] / max(r["requests_graph"], 1)
        out.append(
            [
                label,
                wall_text,
                _num(b["seconds"]),
                ratio,
                b["by"][:90],
                _num(requests) if not isinstance(requests, str) else requests,
                f"{r['throttled_429']:,} ({share * 100:.2f} %)",
                _num(r.get("in_flight_peak")),
                _num(cpu),
                _num(r["peak_rss_mb"], 0),
                "yes" if r["ok"] else "NO: " + "; ".join(r["problems"])[:120],
                f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}",
            ]
        )
    return header, out


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        out.append(
            {"target": target, "measured": measured, "status": _status(ok)},
        )

    for size, fleet in results["fleets"].items():
        sync = next((r for r in fleet["runs"] if r.get("row") == "cspgraph"), None)
        if sync is None or not sync.get("bound"):
            add(f"cspgraph sync at {size} customers", "did not run", False)
            continue
        b = sync["bound"]
        ratio = sync["wall_s"] / b["seconds"]
        add(
            f"{size} customers: wall ≤ {WALL_TARGET}× the run's lower bound",
            f"{ratio:.2f}× ({sync['wall_s']:.1f} s vs {b['seconds']:.1f} s, {b['by']}; load "
            f"{sync['load_before'][0]:.1f} before the run on {results['machine']['nproc']} cores)",
            ratio <= WALL_TARGET,
        )
        share = sync["throttled_429"] / max(sync["requests_graph"], 1)
        add(
            f"{size} customers: < 2 % of requests answered 429",
            f"{share * 100:.2f} % ({sync['throttled_429']} of {sync['requests_graph']})",
            share < THROTTLED_TARGET,
        )
        add(
            f"{size} customers: nothing lost (store equals the world's counts)",
            "complete" if sync["ok"] else "; ".join(sync["problems"])[:200],
            bool(sync["ok"]),
        )
        if int(size) >= 5000:
            rss = sync["peak_rss_mb"]
            add(
                f"{size} customers: peak RSS ≤ {RSS_TARGET_MB:.0f} MB",
                f"{rss:.0f} MB (peak in flight {sync.get('in_flight_peak')} requests)",
                rss <= RSS_TARGET_MB,
            )
    return out


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def text(results: dict[str, Any], markdown: bool) -> str:
    table = markdown_table if markdown else text_table
    parts = [
        f"### Realistic regime, run of {results['date']}",
        "",
        f"`{results['command']}`; {results['machine']['nproc']} cores, load average at the start "
        f"{results['machine']['load_at_start']} (1, 5, 15 min). The machine was shared with other "
        "work while this ran: wall times are disturbed by it, and the load before and after each "
        "run is in the table.",
        "",
    ]
    for size, fleet in results["fleets"].items():
        f = fleet["fleet"]
        large = f.get("large_tenants") or []
        parts.append(
            f"#### {int(size):,} customers ({f['items']:,} objects"
            + (f"; {len(large)} tenants of {large[0]:,} users among them" if large else "")
            + f"; world built in {f['world_build_s']:.0f} s)"
        )
        parts.append("")
        header, body = rows(fleet)
        parts.append(table(header, body))
        parts.append("")
        sync = next(
            (r for r in fleet["runs"] if r.get("row") == "cspgraph" and r.get("bound")), None
        )
        if sync is not None:
            c = sync["bound"]["chain"]
            parts.append(
                f"cspgraph's bound: start-up {c['startup_s']:.2f} s + listing page "
                f"{c['listing_s']:.2f} s + sign-in {c.get('login_s', 0):.2f} s + longest pull "
                f"{c.get('graph_s', 0):.2f} s ({c.get('path', '-')}, tenant {c.get('tenant')}); "
                f"budget arithmetic {sync['bound']['budgets']['seconds']:.2f} s; mean Graph "
                f"latency applied {c.get('graph_wait_mean_s')} s over {c.get('graph_waits'):,} "
                "answers."
            )
            parts.append("")
    parts.append("#### Targets (issue 16)")
    parts.append("")
    parts.append(
        table(
            ["target", "measured", "status"],
            [[t["target"], t["measured"], t["status"]] for t in results.get("targets", [])],
        )
    )
    return "\n".join(parts)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def update_docs(results: dict[str, Any], path: Path = DOCS) -> None:
    """Replace docs/benchmarks.md's realistic block with this run's figures (the block stands
    first in the results; the CPU view's block stays as it is)."""
    block = f"{BEGIN}\n{text(results, markdown=True)}\n{END}"
    current = path.read_text()
    if BEGIN not in current:
        raise SystemExit(f"{path} has no {BEGIN} marker; add one where the table goes")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _m: block, current))
