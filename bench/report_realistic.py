"""The realistic regime's output: terminal tables, raw JSON, and its block in docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.bound import throttled
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


def per_host_text(r: dict[str, Any], key: str) -> str:
    """``key`` (requests or 429s) of Graph / Partner Center / sign-in, as the table shows it."""
    hosts = r.get("hosts")
    if not hosts:  # a run recorded before every host was counted: Graph's only
        return f"{r['requests_graph' if key == 'requests' else 'throttled_429']:,} / - / -"
    return " / ".join(f"{hosts[h][key]:,}" for h in ("graph", "partner_center", "login"))


def throttled_share(r: dict[str, Any]) -> tuple[int, int]:
    """429s and requests over every host (Graph's only for a run recorded before that)."""
    hosts = r.get("hosts")
    return throttled(hosts) if hosts else (r["throttled_429"], r["requests_graph"])


def graph_end_text(b: dict[str, Any]) -> str:
    end = b.get("graph_end")
    if not end:
        return "-"
    times = f" = {end['times_chain']:.2f}× the chain" if end["times_chain"] is not None else ""
    return f"{end['ends_after_s']:.1f} s{times}"


def one_line(size: int, r: dict[str, Any]) -> str:
    b = r["bound"]
    return (
        f"[{size}] {r['row']}: wall {r['wall_s']:.1f} s, bound {b['seconds']:.1f} s ({b['by']}; "
        f"chain {b['chain']['seconds']:.1f} s, Partner Center {b['partner_center']['seconds']:.1f}"
        f" s), Graph pulls ended at {graph_end_text(b)}, requests Graph / Partner Center / "
        f"sign-in {per_host_text(r, 'requests')}, 429s {per_host_text(r, 'throttled_429')}, "
        "peak in flight "
        f"{r['in_flight_peak']}, CPU {r['cpu_s']:.1f} s, RSS {r['peak_rss_mb']:.0f} MB, load "
        f"{r['load_before'][0]:.1f}, {'complete' if r['ok'] else r['problems']}; longest chain "
        f"{r.get('chain_gaps')}"
    )


def rows(fleet: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "client", "wall s", "lower bound s", "wall ÷ bound", "bound set by", "chain s",
        "Partner Center bound s", "Graph pulls ended", "requests Graph / PC / sign-in",
        "429s Graph / PC / sign-in", "peak in flight", "client CPU s", "peak RSS MB", "complete",
        "load (1 min)",
    ]  # fmt: skip
    out = []
    for r in fleet["runs"]:
        label = LABELS.get(r["runner"] if "row" not in r else r["row"], r.get("runner", "?"))
        if not r.get("bound"):
            problems = "NO: " + "; ".join(r.get("problems", []))[:120]
            out.append([label] + ["-"] * (len(header) - 3) + [problems, "-"])
            continue
        b = r["bound"]
        wall = r["wall_s"]
        ratio = f"{wall / b['seconds']:.2f}×" if b["seconds"] else "-"
        wall_text = _num(wall)
        requests, cpu = per_host_text(r, "requests"), r["cpu_s"]
        if r.get("sampled"):
            s = r["scaled"]
            label += f" — {r['customers']}-customer sample"
            wall_text = f"{_num(s['wall_s'])} scaled (sample {_num(wall)})"
            ratio += " (sample)"
            requests += f" (sample; Graph {s['requests_graph']:,} scaled)"
            cpu = s["cpu_s"]
        refused, sent = throttled_share(r)
        pc = b.get("partner_center") or {}
        out.append(
            [
                label,
                wall_text,
                _num(b["seconds"]),
                ratio,
                b["by"][:90],
                _num(b["chain"]["seconds"]),
                _num(pc.get("seconds")),
                graph_end_text(b),
                requests,
                f"{per_host_text(r, 'throttled_429')} ({refused / max(sent, 1) * 100:.2f} %)",
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
        refused, sent = throttled_share(sync)
        share = refused / max(sent, 1)
        add(
            f"{size} customers: < 2 % of requests answered 429 (every host: Graph, Partner "
            "Center, sign-in)",
            f"{share * 100:.2f} % ({refused:,} of {sent:,}; Graph / Partner Center / sign-in: "
            f"{per_host_text(sync, 'throttled_429')} of {per_host_text(sync, 'requests')})",
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
            parts.append(bound_text(sync["bound"]))
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


def bound_text(b: dict[str, Any]) -> str:
    """cspgraph's bound, part by part: the chain, Graph's budgets, Partner Center's limit, and when
    Graph's last answer ended."""
    c = b["chain"]
    text = (
        f"cspgraph's bound: start-up {c['startup_s']:.2f} s + listing page "
        f"{c['listing_s']:.2f} s + sign-in {c.get('login_s', 0):.2f} s + longest pull "
        f"{c.get('graph_s', 0):.2f} s ({c.get('path', '-')}, tenant {c.get('tenant')}) = chain "
        f"{c['seconds']:.2f} s; Graph's budget arithmetic {b['budgets']['seconds']:.2f} s"
    )
    pc = b.get("partner_center")
    if pc and pc.get("tenant"):
        text += (
            f"; Partner Center's limit {pc['seconds']:.2f} s (partner tenant {pc['tenant']}: "
            f"{pc['answered']:,} answered requests that count against {pc['limit']:.0f} per "
            f"{pc['window_s']:.0f} s = {pc['paced_s']:.2f} s apart at least, + start-up + the last "
            f"one's {pc['last_latency_s']:.2f} s; {pc['refused_429']:,} answered 429 besides)"
        )
    elif pc:
        text += "; Partner Center's limit 0.00 s (no request counted against it, or it was off)"
    text += (
        f". Graph pulls ended at {graph_end_text(b)}; mean Graph latency applied "
        f"{c.get('graph_wait_mean_s')} s over {c.get('graph_waits'):,} answers."
    )
    return text


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
